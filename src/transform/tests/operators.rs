use super::{boolean, num, string};

#[test]
fn literals() {
    assert_eq!(num("1"), 1.0);
    assert_eq!(num("2.5"), 2.5);
    assert_eq!(num("1e-3"), 0.001);
    assert!(num("nan").is_nan());
    assert!(boolean("true"));
    assert!(!boolean("false"));
    assert_eq!(string("'text'"), "text");
    assert_eq!(string("\"text\""), "text");
}

#[test]
fn names_read_their_slots() {
    assert_eq!(num("a"), 2.0);
    assert!(num("m").is_nan());
    assert!(boolean("yes"));
    assert!(!boolean("no"));
    assert_eq!(string("cat"), "travel");
}

#[test]
fn arithmetic_on_constants_and_slots() {
    assert_eq!(num("2 + 3"), 5.0);
    assert_eq!(num("a + b"), 12.0);
    assert_eq!(num("b - a"), 8.0);
    assert_eq!(num("a * 3"), 6.0);
    assert_eq!(num("b / 4"), 2.5);
    assert_eq!(num("b % 3"), 1.0);
    assert_eq!(num("-b % 3"), -1.0, "`%` keeps the dividend's sign, like Rust's f64 `%`");
    assert_eq!(num("7.5 % a"), 1.5);
    assert_eq!(num("-a"), -2.0);
    assert_eq!(num("--a"), 2.0);
}

#[test]
fn ieee_division_and_nan_propagation() {
    assert_eq!(num("a / 0"), f64::INFINITY);
    assert_eq!(num("-a / 0"), f64::NEG_INFINITY);
    assert!(num("0 / 0").is_nan());
    assert!(num("a % 0").is_nan());
    assert!(num("m + 1").is_nan());
    assert!(num("a * m").is_nan());
    assert!(num("-m").is_nan());
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(num("1 - 2 - 3"), -4.0);
    assert_eq!(num("a - b - a"), -10.0);
    assert_eq!(num("2 + 3 * 4"), 14.0);
    assert_eq!(num("a + b * a"), 22.0);
    assert_eq!(num("(2 + 3) * 4"), 20.0);
    assert_eq!(num("b / a / a"), 2.5);
    assert_eq!(num("-a * 3"), -6.0);
    assert_eq!(num("b - -a"), 12.0);
    assert_eq!(num("b % 4 * 2"), 4.0);
    assert!(boolean("a + 1 > b - 8 * 1"));
    assert!(boolean("not a > b and yes"));
    assert!(boolean("no and no or yes"), "`and` binds tighter than `or`");
    assert!(!boolean("no and (no or yes)"));
    assert!(boolean("not no and yes"));
    assert!(!boolean("not (no or yes)"));
}

#[test]
fn ordered_comparisons() {
    assert!(boolean("a < b"));
    assert!(!boolean("b < a"));
    assert!(boolean("a <= 2"));
    assert!(!boolean("a < 2"));
    assert!(boolean("b > a"));
    assert!(boolean("2 >= a"));
    assert!(!boolean("1 >= a"));
}

#[test]
fn equality_on_every_type() {
    assert!(boolean("a == 2"));
    assert!(boolean("a != b"));
    assert!(!boolean("a != 2"));
    assert!(boolean("cat == 'travel'"));
    assert!(boolean("'travel' == cat"));
    assert!(boolean("cat != 'grocery'"));
    assert!(!boolean("cat == blank"));
    assert!(boolean("'x' == 'x'"));
    assert!(boolean("yes == true"));
    assert!(boolean("yes != no"));
    assert!(!boolean("no == yes"));
    assert!(boolean("(a < b) == yes"));
}

#[test]
fn comparisons_with_nan_are_false_except_not_equal() {
    for op in ["<", "<=", ">", ">=", "=="] {
        assert!(!boolean(&format!("m {op} 1")), "m {op} 1");
        assert!(!boolean(&format!("1 {op} m")), "1 {op} m");
        assert!(!boolean(&format!("m {op} m")), "m {op} m");
        assert!(!boolean(&format!("nan {op} 1")), "nan {op} 1 (folded)");
    }
    assert!(boolean("m != 1"));
    assert!(boolean("m != m"));
    assert!(boolean("nan != nan"));
}

#[test]
fn logic_in_both_spellings() {
    assert!(boolean("yes and yes"));
    assert!(!boolean("yes && no"));
    assert!(boolean("no or yes"));
    assert!(!boolean("no || no"));
    assert!(boolean("not no"));
    assert!(!boolean("!yes"));
    assert!(boolean("!(a > b)"));
    assert!(boolean("true and yes"));
    assert!(!boolean("false and yes"));
    assert!(boolean("true or no"));
    assert!(!boolean("false or no"));
}
