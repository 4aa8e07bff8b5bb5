use super::{Compiler, Frame, Program, Slot, Type, compiler, fill};

#[test]
fn later_features_use_earlier_ones() {
    let mut c = compiler();
    c.define("sum", "a + b").unwrap();
    c.define("double", "sum * 2").unwrap();
    c.define("big", "double > 20").unwrap();
    c.define("label", "if(big, 'big', 'small')").unwrap();
    c.define("big_num", "num(big) + double").unwrap();
    let program = c.finish();
    let mut frame = fill(&program);
    program.run(&mut frame);
    let num = |name| match program.lookup(name) {
        Some((Slot::Num(i), _)) => frame.nums[i],
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(num("sum"), 12.0);
    assert_eq!(num("double"), 24.0);
    assert_eq!(num("big"), 1.0);
    assert_eq!(num("big_num"), 25.0);
    let Some((Slot::Str(i), Type::Str)) = program.lookup("label") else { panic!("label is not a string") };
    assert_eq!(frame.strs[i], "big");
}

#[test]
fn slots_are_laid_out_in_declaration_order() {
    let mut c = Compiler::new();
    assert_eq!(c.input("x", Type::Num).unwrap(), Slot::Num(0));
    assert_eq!(c.input("s", Type::Str).unwrap(), Slot::Str(0));
    assert_eq!(c.input("flag", Type::Bool).unwrap(), Slot::Num(1));
    assert_eq!(
        c.define("oh", "one_hot(s, ['a', 'b', 'c'])").unwrap(),
        (Slot::Vector { start: 2, len: 3 }, Type::Vector(3))
    );
    assert_eq!(c.define("y", "x * 2").unwrap(), (Slot::Num(5), Type::Num));
    assert_eq!(c.define("t", "coalesce(s, 'none')").unwrap(), (Slot::Str(1), Type::Str));
    assert_eq!(c.define("night", "not flag").unwrap(), (Slot::Num(6), Type::Bool));
    let program = c.finish();
    let frame = program.frame();
    assert_eq!(frame.nums.len(), 7);
    assert!(frame.nums.iter().all(|v| v.is_nan()));
    assert_eq!(frame.strs, ["", ""]);
    assert_eq!(program.lookup("flag"), Some((Slot::Num(1), &Type::Bool)));
    assert_eq!(program.lookup("nope"), None);
    assert_eq!(program.outputs().collect::<Vec<_>>(), ["oh", "y", "t", "night"]);
    assert_eq!(program.vector_labels("oh").unwrap(), ["a", "b", "c"]);
    assert_eq!(program.vector_labels("y"), None);
}

#[test]
fn many_category_labels_keep_their_order() {
    let labels: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let quoted: Vec<String> = labels.iter().map(|l| format!("'{l}'")).collect();
    let mut c = compiler();
    c.define("oh", &format!("one_hot(cat, [{}])", quoted.join(","))).unwrap();
    assert_eq!(c.finish().vector_labels("oh").unwrap(), labels.as_slice());
}

#[test]
fn frames_are_reusable_across_rows() {
    let mut c = Compiler::new();
    c.input("s", Type::Str).unwrap();
    c.input("x", Type::Num).unwrap();
    c.define("oh", "one_hot(s, ['a', 'b'])").unwrap();
    c.define("t", "coalesce(s, 'none')").unwrap();
    c.define("y", "x + 1").unwrap();
    let program = c.finish();
    let mut frame = program.frame();
    for (s, x, hot, t, y) in [
        ("a", 1.0, [1.0, 0.0], "a", 2.0),
        ("zzz", f64::NAN, [0.0, 0.0], "zzz", f64::NAN),
        ("", 4.0, [0.0, 0.0], "none", 5.0),
    ] {
        frame.strs[0] = s.to_owned();
        frame.nums[0] = x;
        program.run(&mut frame);
        assert_eq!(frame.nums[1..3], hot, "row {s:?}");
        assert_eq!(frame.strs[1], t);
        assert_eq!(frame.nums[3].to_bits(), y.to_bits());
    }
}

#[test]
fn run_grows_a_short_frame_instead_of_panicking() {
    let mut c = Compiler::new();
    c.define("k", "40 + 2").unwrap();
    c.define("w", "'word'").unwrap();
    let program = c.finish();
    let mut frame = Frame::default();
    program.run(&mut frame);
    assert_eq!(frame.nums, [42.0]);
    assert_eq!(frame.strs, ["word"]);
}

#[test]
fn missing_bool_input_reads_false() {
    let mut c = Compiler::new();
    c.input("flag", Type::Bool).unwrap();
    c.define("out", "not flag").unwrap();
    let program = c.finish();
    let mut frame = program.frame();
    program.run(&mut frame);
    assert_eq!(frame.nums[1], 1.0);
}

#[test]
fn program_is_send_sync_and_debug() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let mut c = compiler();
    c.define("ratio", "a / b").unwrap();
    c.define("oh", "one_hot(cat, ['x'])").unwrap();
    let program: Program = c.finish();
    shared(&program);
    let debug = format!("{program:?}");
    assert!(debug.contains("\"ratio: number\""), "{debug}");
    assert!(debug.contains("\"oh: vector[1]\""), "{debug}");
    assert!(debug.contains("\"cat: string\""), "{debug}");

    let program = std::sync::Arc::new(program);
    let worker = std::thread::spawn({
        let program = std::sync::Arc::clone(&program);
        move || {
            let mut frame = fill(&program);
            program.run(&mut frame);
            frame.nums[program.lookup("ratio").map(|(s, _)| s).and_then(num_index).unwrap()]
        }
    });
    assert_eq!(worker.join().unwrap(), 0.2);
}

fn num_index(slot: Slot) -> Option<usize> {
    match slot {
        Slot::Num(i) => Some(i),
        _ => None,
    }
}
