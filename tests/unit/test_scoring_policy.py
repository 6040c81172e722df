"""The scoring policy (`scoring.policy`): the default file loads, each factor moves the score
the way default_policy.toml documents (everything else held fixed), the result is always the
raw score rounded halves up within 1-10, and `load` refuses a bad file saying where."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from priorizer.errors import Invalid
from priorizer.scoring.policy import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Facts,
    Policy,
    as_dict,
    combine,
    dataset_factors,
    load,
    quick_result,
    score,
    size_factor,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DEFAULT = load()
FACTORS = {"organization", "keywords", "popularity", "size", "age", "removed_upstream"}


def raw(facts: Facts, policy: Policy = DEFAULT) -> float:
    return score(policy, facts, now=NOW).raw


def factor_names(facts: Facts, policy: Policy = DEFAULT) -> list[str]:
    return [f.factor for f in score(policy, facts, now=NOW).factors]


def points_of(facts: Facts, factor: str, policy: Policy = DEFAULT) -> float | None:
    found = [f.points for f in score(policy, facts, now=NOW).factors if f.factor == factor]
    assert len(found) <= 1
    return found[0] if found else None


def years_ago(years: float) -> datetime:
    return NOW - timedelta(days=years * 365.25)


# --- the default policy -----------------------------------------------------------------------


def test_default_policy_loads() -> None:
    assert load(None) == DEFAULT
    assert DEFAULT.name == "default"
    assert DEFAULT.base == 4.0
    assert DEFAULT.organizations["noaa-gov"] == 2.0
    assert DEFAULT.keywords.cap == 3.0
    assert DEFAULT.keywords.points["climate"] == 1.5
    assert "ocean" in DEFAULT.keywords.points
    assert (DEFAULT.popularity.per_tenfold, DEFAULT.popularity.cap) == (0.5, 1.5)
    assert [(b.up_to_mb, b.points) for b in DEFAULT.size.bands] == [
        (100, 0.5),
        (10240, 0.0),
        (None, -0.5),
    ]
    assert (DEFAULT.age.per_year, DEFAULT.age.cap) == (0.25, 1.0)
    assert DEFAULT.removed_upstream.points == 3.0


def test_default_policy_is_the_shipped_file() -> None:
    shipped = Path(str(resources.files("priorizer.scoring").joinpath("default_policy.toml")))
    assert load(shipped) == DEFAULT


def test_no_facts_no_factors_base_score() -> None:
    result = score(DEFAULT, Facts(), now=NOW)
    assert result.factors == ()
    assert result.raw == DEFAULT.base
    assert result.result == 4
    assert as_dict(result) == {"factors": [], "raw_score": 4.0, "policy_priority": 4}


def test_as_dict_explains_each_factor() -> None:
    facts = Facts(organization="noaa-gov", title="Climate", removed_upstream=True)
    assert as_dict(score(DEFAULT, facts, now=NOW)) == {
        "factors": [
            {"factor": "organization", "detail": "noaa-gov", "points": 2.0},
            {"factor": "keywords", "detail": "climate", "points": 1.5},
            {
                "factor": "removed_upstream",
                "detail": "the dataset vanished from its portal",
                "points": 3.0,
            },
        ],
        "raw_score": 10.5,
        "policy_priority": 10,
    }


# --- organization -----------------------------------------------------------------------------


@pytest.mark.parametrize("organization", sorted(DEFAULT.organizations))
def test_organization_in_the_table_raises_the_score(organization: str) -> None:
    points = DEFAULT.organizations[organization]
    assert points > 0  # the default favours every agency it lists
    listed = Facts(organization=organization, title="Some data", size_mb=5)
    unlisted = Facts(organization="some-other-org", title="Some data", size_mb=5)
    assert raw(listed) == pytest.approx(raw(unlisted) + points)
    assert points_of(listed, "organization") == points
    assert "organization" not in factor_names(unlisted)


@pytest.mark.parametrize("organization", [None, "", "unknown", "noaa-gov-archive"])
def test_organization_not_in_the_table_gives_nothing(organization: str | None) -> None:
    assert "organization" not in factor_names(Facts(organization=organization))


# --- keywords ---------------------------------------------------------------------------------


KEYWORDS = sorted(DEFAULT.keywords.points.items())


@pytest.mark.parametrize(("word", "points"), KEYWORDS)
@pytest.mark.parametrize("where", ["title", "name", "tags"])
def test_each_keyword_raises_the_score_wherever_it_is(word: str, points: float, where: str) -> None:
    assert points > 0
    text = f"Daily {word.upper()} records"
    with_word = Facts(**{where: (text,) if where == "tags" else text}, size_mb=5)
    without = Facts(
        **{where: ("Daily records",) if where == "tags" else "Daily records"}, size_mb=5
    )
    assert raw(with_word) == pytest.approx(raw(without) + min(points, DEFAULT.keywords.cap))
    assert points_of(with_word, "keywords") == min(points, DEFAULT.keywords.cap)
    assert "keywords" not in factor_names(without)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("Oceanography of the Pacific", "ocean"),
        ("Paleoclimates", "climate"),
        ("Snowfall and snowpack", "snow"),
        ("Droughty soils", "drought"),
        ("Glaciers", "glacier"),
        ("nonclimate", "climate"),
        ("sea level", "sea-level"),
    ],
)
def test_keywords_match_whole_words_only(text: str, keyword: str) -> None:
    assert keyword in DEFAULT.keywords.points
    facts = Facts(title=text, tags=(text,))
    assert "keywords" not in factor_names(facts)
    assert raw(facts) == DEFAULT.base


def test_keyword_counts_once_wherever_and_however_often_it_appears() -> None:
    once = Facts(title="Ocean data")
    many = Facts(title="Ocean ocean OCEAN", name="ocean", tags=("ocean", "Ocean"))
    assert points_of(once, "keywords") == DEFAULT.keywords.points["ocean"]
    assert raw(many) == raw(once)


def test_keywords_add_up_to_the_cap() -> None:
    cap = DEFAULT.keywords.cap
    assert points_of(Facts(title="snow"), "keywords") == 0.5
    assert points_of(Facts(title="snow drought"), "keywords") == 1.0
    assert points_of(Facts(title="climate ocean"), "keywords") == 2.5
    words = ["climate", "ocean", "weather", "glacier", "permafrost", "emissions"]
    assert sum(DEFAULT.keywords.points[w] for w in words) > cap
    previous = DEFAULT.base
    for n in range(1, len(words) + 1):
        current = raw(Facts(title=" ".join(words[:n])))
        assert current >= previous  # another keyword never lowers the score
        assert current <= DEFAULT.base + cap
        previous = current
    assert points_of(Facts(title=" ".join(words)), "keywords") == cap
    detail = score(DEFAULT, Facts(title=" ".join(words)), now=NOW).factors[0].detail
    assert detail == ", ".join(sorted(words))


def test_keyword_cap_from_the_policy() -> None:
    policy = Policy(keywords={"cap": 1.0, "points": {"a": 0.75, "b": 0.75}})
    assert points_of(Facts(title="a b"), "keywords", policy) == 1.0
    assert points_of(Facts(title="a"), "keywords", policy) == 0.75


def test_hyphenated_keyword_matches_as_a_whole() -> None:
    assert points_of(Facts(tags=("Sea-Level rise",)), "keywords") == 1.0


# --- popularity -------------------------------------------------------------------------------


def test_more_views_never_lower_the_score_and_are_capped() -> None:
    counts = [1, 2, 9, 10, 11, 99, 100, 1000, 5000, 10**6, 10**12]
    scores = [raw(Facts(views=v)) for v in counts]
    assert scores == sorted(scores)
    assert scores[-1] > scores[0]
    assert max(scores) == DEFAULT.base + DEFAULT.popularity.cap
    assert points_of(Facts(views=10), "popularity") == pytest.approx(0.5)
    assert points_of(Facts(views=100), "popularity") == pytest.approx(1.0)
    assert points_of(Facts(views=10**6), "popularity") == DEFAULT.popularity.cap


@pytest.mark.parametrize("count", [None, 0, 1])
def test_no_views_give_no_popularity_factor(count: int | None) -> None:
    assert "popularity" not in factor_names(Facts(views=count))


# --- size -------------------------------------------------------------------------------------


def test_smaller_files_never_score_lower() -> None:
    sizes = [0.001, 1, 100, 100.5, 5000, 10240, 10240.5, 10**6, 10**9]
    scores = [raw(Facts(size_mb=s)) for s in sizes]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]


@pytest.mark.parametrize(
    ("size", "points"),
    [(0.001, 0.5), (100, 0.5), (100.5, None), (10240, None), (10240.5, -0.5), (10**9, -0.5)],
)
def test_size_bands(size: float, points: float | None) -> None:
    # the 100 MB - 10 GB band gives 0 points: left out of the factors
    assert points_of(Facts(size_mb=size), "size") == points


def test_unknown_size_gives_no_size_factor() -> None:
    assert "size" not in factor_names(Facts(size_mb=None))
    assert raw(Facts(size_mb=None)) == DEFAULT.base


# --- age --------------------------------------------------------------------------------------


def test_older_never_scores_lower_and_is_capped() -> None:
    ages = [0, 0.5, 0.99, 1.01, 2.5, 3.5, 4.01, 10, 50]
    scores = [raw(Facts(modified_at=years_ago(a))) for a in ages]
    assert scores == sorted(scores)
    assert scores[-1] == DEFAULT.base + DEFAULT.age.cap
    assert points_of(Facts(modified_at=years_ago(1.01)), "age") == 0.25
    assert points_of(Facts(modified_at=years_ago(2.5)), "age") == 0.5
    assert points_of(Facts(modified_at=years_ago(50)), "age") == DEFAULT.age.cap


@pytest.mark.parametrize(
    "modified_at", [None, NOW, NOW - timedelta(days=364), NOW + timedelta(days=800)]
)
def test_under_a_year_or_unknown_gives_no_age_factor(modified_at: datetime | None) -> None:
    assert "age" not in factor_names(Facts(modified_at=modified_at))


def test_age_uses_the_given_now() -> None:
    facts = Facts(modified_at=datetime(2020, 1, 1, tzinfo=UTC))
    early = score(DEFAULT, facts, now=datetime(2020, 6, 1, tzinfo=UTC))
    late = score(DEFAULT, facts, now=datetime(2023, 6, 1, tzinfo=UTC))
    assert early.factors == ()
    assert [(f.factor, f.points) for f in late.factors] == [("age", 0.75)]


# --- removed upstream -------------------------------------------------------------------------


def test_removed_upstream_raises_the_score() -> None:
    kept = Facts(title="x", size_mb=50, views=10)
    removed = Facts(title="x", size_mb=50, views=10, removed_upstream=True)
    assert raw(removed) == raw(kept) + DEFAULT.removed_upstream.points
    assert raw(removed) > raw(kept)
    assert points_of(removed, "removed_upstream") == 3.0
    assert "removed_upstream" not in factor_names(kept)


# --- the result -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "expected"),
    [(1.0, 1), (1.49, 1), (1.5, 2), (2.5, 3), (4.5, 5), (4.49, 4), (6.5, 7), (9.5, 10), (10, 10)],
)
def test_result_rounds_halves_up(base: float, expected: int) -> None:
    assert score(Policy(base=base), Facts(), now=NOW).result == expected


def test_result_is_kept_within_1_and_10() -> None:
    high = Policy(base=9.0, removed_upstream={"points": 7.0})
    low = Policy(base=1.0, removed_upstream={"points": -7.0})
    high_score = score(high, Facts(removed_upstream=True), now=NOW)
    low_score = score(low, Facts(removed_upstream=True), now=NOW)
    assert (high_score.raw, high_score.result) == (16.0, MAX_PRIORITY)
    assert (low_score.raw, low_score.result) == (-6.0, MIN_PRIORITY)


def test_factors_giving_no_points_are_left_out() -> None:
    policy = Policy(
        organizations={"o": 0.0},
        keywords={"points": {"zero": 0.0}},
        removed_upstream={"points": 0.0},
        age={"per_year": 0.0, "cap": 5.0},
    )
    facts = Facts(organization="o", title="zero", removed_upstream=True, modified_at=years_ago(5))
    assert score(policy, facts, now=NOW).factors == ()


def test_result_rounds_halves_up_despite_float_sums() -> None:
    policy = Policy(
        base=3.0,
        organizations={"o": 2.8},
        keywords={"points": {"climate": 1.4}},
        removed_upstream={"points": 0.3},
    )
    result = score(policy, Facts(organization="o", title="climate", removed_upstream=True), now=NOW)
    assert result.raw == 7.5
    assert result.result == 8


@pytest.mark.parametrize("title", ["CL\u0130MATE CHANGE", "\u017fnow depth"])
def test_keywords_in_any_case_never_break_scoring(title: str) -> None:
    result = score(DEFAULT, Facts(title=title), now=NOW)
    assert MIN_PRIORITY <= result.result <= MAX_PRIORITY


# Points in quarters: their sums are exact in binary floating point, so `raw` is the exact sum
# (for the float-sum rounding bug, see test_result_rounds_halves_up_despite_float_sums).
quarters = st.integers(-20, 20).map(lambda n: n / 4)
caps = st.integers(0, 20).map(lambda n: n / 4)
WORDS = ["climate", "ocean", "snow", "sea-level", "river", "ice"]
policies = st.builds(
    Policy,
    base=st.integers(4, 40).map(lambda n: n / 4),
    organizations=st.dictionaries(st.sampled_from(["a", "b", "c"]), quarters),
    keywords=st.fixed_dictionaries(
        {"cap": caps, "points": st.dictionaries(st.sampled_from(WORDS), quarters)}
    ),
    popularity=st.fixed_dictionaries({"per_tenfold": quarters, "cap": caps}),
    size=st.fixed_dictionaries(
        {
            "bands": st.lists(
                st.fixed_dictionaries(
                    {"points": quarters},
                    optional={"up_to_mb": st.floats(0, 1e6, allow_nan=False)},
                ),
                max_size=4,
            )
        }
    ),
    age=st.fixed_dictionaries({"per_year": quarters, "cap": caps}),
    removed_upstream=st.fixed_dictionaries({"points": quarters}),
)
texts = st.lists(
    st.sampled_from([*WORDS, "Ocean", "SNOW", "oceanography", "data", "-", " "]), max_size=6
).map(" ".join)
facts = st.builds(
    Facts,
    size_mb=st.none() | st.floats(0, 1e9, allow_nan=False),
    organization=st.none() | st.sampled_from(["a", "b", "c", "d"]),
    title=st.none() | texts,
    name=st.none() | texts,
    tags=st.lists(texts, max_size=3).map(tuple),
    views=st.none() | st.integers(0, 10**12),
    modified_at=st.none()
    | st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    removed_upstream=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(policies, facts)
def test_result_is_raw_rounded_halves_up_within_1_to_10(policy: Policy, fact: Facts) -> None:
    result = score(policy, fact, now=NOW)
    assert MIN_PRIORITY <= result.result <= MAX_PRIORITY
    assert result.result == min(MAX_PRIORITY, max(MIN_PRIORITY, math.floor(result.raw + 0.5)))
    assert result.raw == pytest.approx(policy.base + sum(f.points for f in result.factors))
    names = [f.factor for f in result.factors]
    assert len(names) == len(set(names))
    assert set(names) <= FACTORS
    assert all(f.points != 0 for f in result.factors)
    if "keywords" in names:
        assert points_of(fact, "keywords", policy) <= policy.keywords.cap
    if "popularity" in names:
        assert points_of(fact, "popularity", policy) <= policy.popularity.cap
    if "age" in names:
        assert points_of(fact, "age", policy) <= policy.age.cap


@settings(max_examples=300, deadline=None)
@given(facts, st.data())
def test_each_factor_moves_the_default_score_its_documented_way(fact: Facts, data: Any) -> None:
    """Whatever the other facts, under the default policy: more views, a smaller file, an older
    dataset, a listed organization and removal upstream never lower the raw score."""
    before = raw(fact)
    more_views = (fact.views or 0) + data.draw(st.integers(1, 10**9))
    assert raw(Facts(**{**_fields(fact), "views": more_views})) >= before
    if fact.size_mb is not None:
        smaller = fact.size_mb * data.draw(st.floats(0, 1))
        assert raw(Facts(**{**_fields(fact), "size_mb": smaller})) >= before
    if fact.modified_at is not None:
        older = fact.modified_at - timedelta(days=data.draw(st.integers(1, 20_000)))
        assert raw(Facts(**{**_fields(fact), "modified_at": older})) >= before
    listed = raw(Facts(**{**_fields(fact), "organization": "noaa-gov"}))
    unlisted = raw(Facts(**{**_fields(fact), "organization": "d"}))
    assert listed == pytest.approx(unlisted + 2.0)
    assert raw(Facts(**{**_fields(fact), "removed_upstream": True})) == pytest.approx(
        raw(Facts(**{**_fields(fact), "removed_upstream": False})) + 3.0
    )


@settings(max_examples=200, deadline=None)
@given(policies, facts)
def test_score_is_the_dataset_factors_combined_with_the_size_factor(
    policy: Policy, fact: Facts
) -> None:
    """The dataset's factors can be computed once for all its files: they never depend on the
    file's size, and combined with each file's size factor they give that file's score."""
    from_dataset = dataset_factors(policy, fact, now=NOW)
    assert "size" not in {f.factor for f in from_dataset}
    assert from_dataset == dataset_factors(
        policy, Facts(**{**_fields(fact), "size_mb": 1.0}), now=NOW
    )
    assert combine(policy, from_dataset, size_factor(policy, fact)) == score(policy, fact, now=NOW)


any_points = st.floats(-5, 5, allow_nan=False)
any_caps = st.floats(0, 5, allow_nan=False)
# Any finite points, not just quarters: the fast path must agree with score() exactly.
policies_any = st.builds(
    Policy,
    base=st.floats(1, 10),
    organizations=st.dictionaries(st.sampled_from(["a", "b", "c"]), any_points),
    keywords=st.fixed_dictionaries(
        {"cap": any_caps, "points": st.dictionaries(st.sampled_from(WORDS), any_points)}
    ),
    popularity=st.fixed_dictionaries({"per_tenfold": any_points, "cap": any_caps}),
    size=st.fixed_dictionaries(
        {
            "bands": st.lists(
                st.fixed_dictionaries(
                    {"points": any_points},
                    optional={"up_to_mb": st.floats(0, 1e6, allow_nan=False)},
                ),
                max_size=4,
            )
        }
    ),
    age=st.fixed_dictionaries({"per_year": any_points, "cap": any_caps}),
    removed_upstream=st.fixed_dictionaries({"points": any_points}),
)


@settings(max_examples=400, deadline=None)
@given(policies_any | policies, facts)
def test_quick_result_is_the_score_result(policy: Policy, fact: Facts) -> None:
    """Harvests rank files with quick_result from the sum of their dataset's factors' points:
    it must give exactly what score() (and so the explanation) gives."""
    dataset_points = sum(f.points for f in dataset_factors(policy, fact, now=NOW))
    quick = quick_result(policy, dataset_points, fact.size_mb)
    assert quick == score(policy, fact, now=NOW).result
    assert MIN_PRIORITY <= quick <= MAX_PRIORITY


def _fields(fact: Facts) -> dict[str, Any]:
    return {name: getattr(fact, name) for name in Facts.__slots__}


# --- load -------------------------------------------------------------------------------------


CUSTOM = """
name = "coastal"
base = 6.5

[organizations]
"noaa-gov" = 3.0

[keywords]
cap = 2.0
[keywords.points]
tide = 1.25
coast = 1.25

[popularity]
per_tenfold = 1.0
cap = 2.0

[[size.bands]]
up_to_mb = 1
points = 1.0
[[size.bands]]
points = 0.0

[age]
per_year = 0.5
cap = 0.5

[removed_upstream]
points = 1.0
"""


def test_load_a_custom_policy(tmp_path: Path) -> None:
    path = tmp_path / "coastal.toml"
    path.write_text(CUSTOM, encoding="utf-8")
    policy = load(path)
    assert policy.name == "coastal"
    assert policy.base == 6.5
    assert policy.organizations == {"noaa-gov": 3.0}
    assert policy.keywords.cap == 2.0
    assert policy.keywords.points == {"tide": 1.25, "coast": 1.25}
    assert [(b.up_to_mb, b.points) for b in policy.size.bands] == [(1, 1.0), (None, 0.0)]
    result = score(
        policy,
        Facts(
            organization="noaa-gov",
            title="Tide gauges of the coast",
            views=100,
            size_mb=0.5,
            modified_at=years_ago(5),
            removed_upstream=True,
        ),
        now=NOW,
    )
    assert len(result.factors) == 6
    assert {f.factor: f.points for f in result.factors} == {
        "organization": 3.0,
        "keywords": 2.0,
        "popularity": 2.0,
        "size": 1.0,
        "age": 0.5,
        "removed_upstream": 1.0,
    }
    assert (result.raw, result.result) == (16.0, 10)


def test_load_a_partial_policy_takes_the_defaults_of_the_model(tmp_path: Path) -> None:
    path = tmp_path / "minimal.toml"
    path.write_text('name = "minimal"\n', encoding="utf-8")
    policy = load(path)
    assert policy == Policy(name="minimal")
    assert score(policy, Facts(title="climate", removed_upstream=True), now=NOW).factors == ()


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Invalid) as refused:
        load(path)
    message = str(refused.value)
    assert str(path) in message
    return message


def test_load_refuses_invalid_toml(tmp_path: Path) -> None:
    message = _refused(tmp_path, 'name = "x"\nbase = \n[organizations\n')
    assert "TOML" in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("bogus = 1\n", "bogus"),
        ("[popularity]\nper_ten = 1.0\n", "popularity.per_ten"),
        ("[keywords]\ncaps = 1.0\n", "keywords.caps"),
        ("[[size.bands]]\nup_to = 5\npoints = 1.0\n", "size.bands.0.up_to"),
        ("[removed_upstream]\npoints = 1.0\nbonus = 2.0\n", "removed_upstream.bonus"),
    ],
)
def test_load_refuses_an_unknown_key_naming_it(tmp_path: Path, text: str, where: str) -> None:
    assert where in _refused(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[keywords]\ncap = -1.0\n", "keywords.cap"),
        ("[popularity]\ncap = -0.5\n", "popularity.cap"),
        ("[age]\ncap = -2\n", "age.cap"),
        ("[[size.bands]]\nup_to_mb = -1\npoints = 1.0\n", "size.bands.0.up_to_mb"),
    ],
)
def test_load_refuses_a_negative_cap_naming_it(tmp_path: Path, text: str, where: str) -> None:
    assert where in _refused(tmp_path, text)


@pytest.mark.parametrize("base", ["0", "0.99", "10.01", "11", "-5", "nan", "inf", '"high"'])
def test_load_refuses_a_base_outside_1_to_10(tmp_path: Path, base: str) -> None:
    assert "base" in _refused(tmp_path, f"base = {base}\n")


@pytest.mark.parametrize("base", ["1", "1.0", "10", "5.5"])
def test_load_accepts_a_base_within_1_to_10(tmp_path: Path, base: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f"base = {base}\n", encoding="utf-8")
    assert load(path).base == float(base)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[organizations]\n"noaa-gov" = "lots"\n', "organizations.noaa-gov"),
        ("[[size.bands]]\nup_to_mb = 5\n", "size.bands.0.points"),
        ("keywords = 3\n", "keywords"),
    ],
)
def test_load_refuses_a_wrong_field_naming_it(tmp_path: Path, text: str, where: str) -> None:
    assert where in _refused(tmp_path, text)


def test_load_refuses_a_missing_file_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(Invalid, match=r"absent\.toml"):
        load(path)


def test_load_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "café"\n'.encode("latin-1"))
    with pytest.raises(Invalid, match=r"latin1\.toml"):
        load(path)


@pytest.mark.parametrize(
    "text",
    [
        "[removed_upstream]\npoints = inf\n",
        "[organizations]\no = nan\n",
        "[age]\nper_year = inf\ncap = inf\n",
    ],
)
def test_non_finite_points_are_refused_or_harmless(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    try:
        policy = load(path)
    except Invalid as refused:
        assert str(path) in str(refused)
        return
    facts = Facts(organization="o", removed_upstream=True, modified_at=years_ago(3))
    result = score(policy, facts, now=NOW)
    assert MIN_PRIORITY <= result.result <= MAX_PRIORITY
