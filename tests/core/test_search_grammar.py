import pytest

from cumulo.core.errors import InvalidInput
from cumulo.core.search import Clause, OrderBy, parse_filter, parse_order_by


def test_empty_filter_means_no_clauses() -> None:
    assert parse_filter(None) == []
    assert parse_filter("  ") == []


def test_mlflow_example_filter() -> None:
    clauses = parse_filter(
        "metrics.rmse < 0.8 AND params.model = 'rf' AND tags.\"mlflow.source.type\" = 'LOCAL' "
        "AND attributes.status = 'FINISHED' AND attributes.run_id IN ('a1','b2')"
    )
    assert clauses == [
        Clause("metric", "rmse", "<", 0.8),
        Clause("param", "model", "=", "rf"),
        Clause("tag", "mlflow.source.type", "=", "LOCAL"),
        Clause("attribute", "status", "=", "Completed"),
        Clause("attribute", "run_id", "IN", ("a1", "b2")),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metric.acc >= 1e-3", Clause("metric", "acc", ">=", 0.001)),
        ("params.lr != '0.1'", Clause("param", "lr", "!=", "0.1")),
        ("parameter.x LIKE 'a%'", Clause("param", "x", "LIKE", "a%")),
        ("tag.t ILIKE '%X%'", Clause("tag", "t", "ILIKE", "%X%")),
        ("tags.t IS NULL", Clause("tag", "t", "IS NULL")),
        ("params.p IS NOT NULL", Clause("param", "p", "IS NOT NULL")),
        ("metrics.`f1 score` > 0.5", Clause("metric", "f1 score", ">", 0.5)),
        ('metrics."f1 score" > -2', Clause("metric", "f1 score", ">", -2.0)),
        ("attributes.start_time > 100", Clause("attribute", "created_at", ">", 100.0)),
        ("run_name = 'x'", Clause("attribute", "display_name", "=", "x")),
        ("attr.status NOT IN ('RUNNING')", Clause("attribute", "status", "NOT IN", ("Running",))),
        ("params.q = 'it''s'", Clause("param", "q", "=", "it's")),
    ],
)
def test_single_clauses(text: str, expected: Clause) -> None:
    assert parse_filter(text) == [expected]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.acc > 'high'", "compared with a number"),
        ("params.lr > 0.1", "needs a number field"),
        ("metrics.a > 1 OR metrics.b > 1", "OR is not supported"),
        ("foo.bar = 'x'", "Unknown identifier type"),
        ("attributes.nope = 'x'", "Unknown run attribute"),
        ("metrics.acc", "comparison is missing"),
        ("params.x = rf", "quote strings"),
        ("metrics.a > 1 AND", "nothing after AND"),
        ("metrics.acc LIKE 'x'", "LIKE needs a string"),
        ("metrics.a > 1 metrics.b > 2", "expected AND"),
        ("attributes.run_id IN ('a'", "not closed"),
    ],
)
def test_bad_filters_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text)
    assert fragment in info.value.message


def test_in_works_on_params_tags_metrics_and_attributes() -> None:
    assert parse_filter("params.x IN ('a', 'b')") == [Clause("param", "x", "IN", ("a", "b"))]
    assert parse_filter("tags.t NOT IN ('a')") == [Clause("tag", "t", "NOT IN", ("a",))]
    assert parse_filter("metrics.acc IN (0.5, 1)") == [Clause("metric", "acc", "IN", (0.5, 1.0))]
    assert parse_filter("attributes.user IN ('ann')") == [
        Clause("attribute", "user", "IN", ("ann",))
    ]
    with pytest.raises(InvalidInput, match="compared with a number"):
        parse_filter("metrics.acc IN ('high')")


def test_order_by() -> None:
    assert parse_order_by(["metrics.acc DESC", "params.lr", "attributes.start_time asc"]) == [
        OrderBy("metric", "acc", False),
        OrderBy("param", "lr", True),
        OrderBy("attribute", "created_at", True),
    ]
    assert parse_order_by("metrics.`f1 score` DESC") == [OrderBy("metric", "f1 score", False)]


def test_order_by_rejects_duplicates_and_garbage() -> None:
    with pytest.raises(InvalidInput, match="twice"):
        parse_order_by(["metrics.a", "metrics.a DESC"])
    with pytest.raises(InvalidInput):
        parse_order_by(["metrics.a DESC extra"])
