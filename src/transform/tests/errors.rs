use super::{Compiler, TransformError, Type, compiler, error};

/// (column, message) of the error for `expr`.
fn fault(expr: &str) -> (Option<usize>, String) {
    let e = error(expr);
    assert_eq!((e.feature.as_str(), e.expr.as_str()), ("out", expr));
    (e.column, e.message)
}

fn at(col: usize, message: &str) -> (Option<usize>, String) {
    (Some(col), message.to_owned())
}

#[test]
fn full_message_names_feature_position_and_expression() {
    let mut c = Compiler::new();
    c.input("distance", Type::Num).unwrap();
    c.input("hours", Type::Num).unwrap();
    let e = c.define("speed", "distnce / hours").unwrap_err();
    assert_eq!(
        e,
        TransformError {
            feature: "speed".into(),
            expr: "distnce / hours".into(),
            column: Some(1),
            message: "unknown name `distnce` (did you mean `distance`?)".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "on-demand feature `speed`: unknown name `distnce` (did you mean `distance`?) at column 1 \
         in `distnce / hours`"
    );
}

#[test]
fn unknown_names_and_functions() {
    assert_eq!(fault("b + amout"), at(5, "unknown name `amout`"));
    assert_eq!(fault("cta == 'x'"), at(1, "unknown name `cta` (did you mean `cat`?)"));
    assert_eq!(fault("lg(a)"), at(1, "unknown function `lg` (did you mean `ln`?)"));
    assert_eq!(fault("1 + frobnicate(a)"), at(5, "unknown function `frobnicate`"));
    assert_eq!(fault("a(1)"), at(1, "unknown function `a`"));
    assert_eq!(fault("ln + 1"), at(1, "`ln` is a function; call it as `ln(...)`"));
}

#[test]
fn type_errors_point_at_the_operand() {
    assert_eq!(fault("a + cat"), at(5, "expected a number, got string"));
    assert_eq!(fault("yes * 2"), at(1, "expected a number, got bool"));
    assert_eq!(fault("-cat"), at(2, "expected a number, got string"));
    assert_eq!(fault("a + (cat == 'x')"), at(5, "expected a number, got bool"));
    assert_eq!(fault("cat < 'x'"), at(1, "expected a number, got string"));
    assert_eq!(fault("a and yes"), at(1, "expected a bool, got number"));
    assert_eq!(fault("not a"), at(5, "expected a bool, got number"));
    assert_eq!(fault("yes || cat"), at(8, "expected a bool, got string"));
    assert_eq!(fault("a == cat"), at(3, "cannot compare number with string using `==`"));
    assert_eq!(fault("yes != 1"), at(5, "cannot compare bool with number using `!=`"));
    assert_eq!(fault("ln(cat)"), at(4, "expected a number, got string"));
    assert_eq!(fault("haversine(a, a, a, cat)"), at(20, "expected a number, got string"));
}

#[test]
fn function_argument_types() {
    assert_eq!(fault("if(a, 1, 2)"), at(4, "expected a bool, got number"));
    assert_eq!(fault("if(yes, 1, cat)"), at(12, "expected a number, got string"));
    assert_eq!(fault("if(yes, cat, no)"), at(14, "expected a string, got bool"));
    assert_eq!(fault("coalesce(m, cat)"), at(13, "expected a number, got string"));
    assert_eq!(fault("coalesce(cat, 1)"), at(15, "expected a string, got number"));
    assert_eq!(fault("coalesce(yes, no)"), at(10, "expected a number or string, got bool"));
    assert_eq!(fault("is_missing(yes)"), at(12, "expected a number or string, got bool"));
    assert_eq!(fault("num(a)"), at(5, "expected a bool, got number"));
    assert_eq!(fault("one_hot(a, ['x'])"), at(9, "expected a string, got number"));
}

#[test]
fn arity() {
    assert_eq!(fault("haversine(a, b, a)"), at(1, "`haversine` takes 4 arguments, got 3"));
    assert_eq!(fault("ln()"), at(1, "`ln` takes 1 argument, got 0"));
    assert_eq!(fault("log1p(a, b)"), at(1, "`log1p` takes 1 argument, got 2"));
    assert_eq!(fault("pow(a)"), at(1, "`pow` takes 2 arguments, got 1"));
    assert_eq!(fault("a + clamp(a, b)"), at(5, "`clamp` takes 3 arguments, got 2"));
    assert_eq!(fault("min(a)"), at(1, "`min` takes at least 2 arguments, got 1"));
    assert_eq!(fault("coalesce(m)"), at(1, "`coalesce` takes at least 2 arguments, got 1"));
    assert_eq!(fault("if(yes, 1)"), at(1, "`if` takes 3 arguments, got 2"));
    assert_eq!(fault("bucketize(a)"), at(1, "`bucketize` takes 2 arguments, got 1"));
    assert_eq!(fault("one_hot(cat)"), at(1, "`one_hot` takes 2 arguments, got 1"));
}

#[test]
fn literal_list_arguments() {
    let rule = "`bucketize` boundaries must be literal numbers in ascending order";
    assert_eq!(fault("bucketize(a, [1, 3, 2])"), at(21, rule));
    assert_eq!(fault("bucketize(a, [1, 1])"), at(18, rule));
    assert_eq!(fault("bucketize(a, [1, b])"), at(18, rule));
    assert_eq!(fault("bucketize(a, [1, nan])"), at(18, rule));
    assert_eq!(fault("bucketize(a, [0, 1 + 1])"), at(18, rule));
    assert_eq!(fault("bucketize(a, b)"), at(14, rule));
    assert_eq!(fault("bucketize(a, [])"), at(14, "`bucketize` needs at least one boundary"));
    let rule = "`one_hot` categories must be a list of literal strings, like ['a', 'b']";
    assert_eq!(fault("one_hot(cat, ['x', 1])"), at(20, rule));
    assert_eq!(fault("one_hot(cat, ['x', cat])"), at(20, rule));
    assert_eq!(fault("one_hot(cat, 'x')"), at(14, rule));
    assert_eq!(fault("one_hot(cat, [])"), at(14, "`one_hot` needs at least one category"));
    assert_eq!(fault("one_hot(cat, ['a', 'b', 'a'])"), at(25, "duplicate category 'a' in `one_hot`"));
    assert_eq!(
        fault("ln([1, 2])"),
        at(4, "a list `[...]` is only allowed as the last argument of `bucketize` or `one_hot`")
    );
}

#[test]
fn vectors_only_as_a_whole_expression() {
    let whole = "`one_hot` gives a vector, so it must be the whole expression of an on-demand feature";
    assert_eq!(fault("1 + one_hot(cat, ['x'])"), at(5, whole));
    assert_eq!(fault("if(yes, one_hot(cat, ['x']), 0)"), at(9, whole));
    assert!(
        compiler().define("ok", "(one_hot(cat, ['x']))").is_ok(),
        "parentheses around the whole are fine"
    );
    let mut c = compiler();
    c.define("oh", "one_hot(cat, ['x', 'y'])").unwrap();
    let e = c.define("out", "oh + 1").unwrap_err();
    assert_eq!(e.column, Some(1));
    assert_eq!(e.message, "`oh` is a vector[2] from `one_hot`; it can feed the model but not an expression");
}

#[test]
fn constant_bounds_checked_at_compile_time() {
    assert_eq!(fault("clamp(a, 5, 1)"), at(10, "`clamp` lower bound 5 is above its upper bound 1"));
}

#[test]
fn syntax_errors_carry_columns() {
    assert_eq!(fault(""), at(1, "expected an expression, got end of input"));
    assert_eq!(fault("a +"), at(4, "expected an expression, got end of input"));
    assert_eq!(fault("max(a, b"), at(9, "expected `,` or `)`, got end of input"));
    assert_eq!(fault("a b"), at(3, "unexpected `b` after a complete expression"));
    assert_eq!(fault("a = 1"), at(3, "unexpected `=`; use `==` to compare"));
    assert_eq!(fault("cat == 'x"), at(8, "string is not closed"));
    assert_eq!(fault("a # b"), at(3, "unexpected character `#`"));
    assert_eq!(
        fault("a < b < 3"),
        at(7, "comparisons cannot be chained; join them with `and` or use parentheses")
    );
}

#[test]
fn duplicates_and_vector_inputs() {
    let mut c = compiler();
    let e = c.input("a", Type::Num).unwrap_err();
    assert_eq!(e.to_string(), "feature `a`: `a` is already declared");
    let e = c.input("v", Type::Vector(2)).unwrap_err();
    assert_eq!(e.message, "an input must be a number, bool or string, not vector[2]");
    let e = c.define("b", "a + 1").unwrap_err();
    assert_eq!(e.to_string(), "on-demand feature `b`: `b` is already declared in `a + 1`");
    c.define("x", "a + 1").unwrap();
    let e = c.define("x", "a + 2").unwrap_err();
    assert_eq!((e.column, e.message.as_str()), (None, "`x` is already declared"));
    assert_eq!(c.finish().outputs().collect::<Vec<_>>(), ["x"], "failed definitions leave no trace");
}
