"""Bad input gets a 4xx that names what is wrong, and leaves the database as it was."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import add_assets, asset, table_snapshot

JSON_HEADERS = {"content-type": "application/json"}


def error_fields(response) -> list[str]:
    """The field names a FastAPI 422 points at (last string element of every `loc`)."""
    fields = []
    for problem in response.json()["detail"]:
        names = [part for part in problem["loc"] if isinstance(part, str) and part != "body"]
        fields.extend(names[-1:])
    return fields


def messages(response) -> str:
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(problem["msg"] for problem in detail)


@pytest.fixture
def catalog(database, settings, clock):
    add_assets(
        database,
        settings,
        [asset(1, priority=5), asset(2, priority=7), asset(3, priority=2, size_mb=None)],
        clock(),
    )


@pytest.fixture
def lenient(client) -> TestClient:
    """The same app, answering 500 instead of raising, to see what a real client would get."""
    return TestClient(client.app, raise_server_exceptions=False)


def priorities(client) -> dict[str, int]:
    return {item["id"]: item["base_priority"] for item in client.get("/assets").json()["items"]}


# --- POST /allocate ---------------------------------------------------------------------------

BAD_ALLOCATE_BODIES = [
    pytest.param('{"free_space_gb": -1}', "free_space_gb", "greater than 0", id="negative"),
    pytest.param('{"free_space_gb": -0.5}', "free_space_gb", "greater than 0", id="neg-fraction"),
    pytest.param('{"free_space_gb": 0}', "free_space_gb", "greater than 0", id="zero"),
    pytest.param('{"free_space_gb": "10"}', "free_space_gb", "valid number", id="string"),
    pytest.param('{"free_space_gb": true}', "free_space_gb", "valid number", id="bool"),
    pytest.param('{"free_space_gb": 1e308}', "free_space_gb", "less than or equal", id="1e308"),
    pytest.param('{"free_space_gb": null}', "free_space_gb", "valid number", id="null"),
    pytest.param("{}", "free_space_gb", "required", id="missing"),
    pytest.param('{"node_id": "node-1"}', "free_space_gb", "required", id="only-node"),
    pytest.param('{"free_space_gb": 10, "node_id": ""}', "node_id", "at least 1", id="node-empty"),
    pytest.param(
        json.dumps({"free_space_gb": 10, "node_id": "n" * 10_000}),
        "node_id",
        "at most 128",
        id="node-10kB",
    ),
    pytest.param(
        '{"free_space_gb": 10, "node_id": "node 1"}', "node_id", "pattern", id="node-space"
    ),
    pytest.param(
        '{"free_space_gb": 10, "node_id": " node-1"}', "node_id", "pattern", id="node-lead-space"
    ),
    pytest.param(
        '{"free_space_gb": 10, "node_id": "node/../1"}', "node_id", "pattern", id="node-slash"
    ),
    pytest.param('{"free_space_gb": 10, "node_id": 5}', "node_id", "valid string", id="node-int"),
    pytest.param(
        '{"free_space_gb": 10, "node_id": ["a"]}', "node_id", "valid string", id="node-list"
    ),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_ALLOCATE_BODIES)
def test_allocate_refuses_bad_field(client, database, catalog, body, field, words):
    before = table_snapshot(database)

    response = client.post("/allocate", content=body, headers=JSON_HEADERS)

    assert response.status_code == 422, response.text
    assert field in error_fields(response)
    assert words in messages(response)
    assert table_snapshot(database) == before


@pytest.mark.parametrize(
    "literal",
    [
        "NaN",
        "Infinity",
        "-Infinity",
    ],
)
def test_allocate_refuses_non_finite_free_space(lenient, database, catalog, literal):
    # Python's json module (which FastAPI uses) accepts these non-standard literals.
    before = table_snapshot(database)

    response = lenient.post(
        "/allocate", content=f'{{"free_space_gb": {literal}}}', headers=JSON_HEADERS
    )

    assert table_snapshot(database) == before
    assert response.status_code == 422, response.text
    assert "free_space_gb" in error_fields(response)
    assert "finite" in messages(response)


def test_allocate_non_finite_free_space_never_leases(lenient, database, catalog):
    """Whatever the status code, a NaN budget must not hand anything out (NaN compares false)."""
    before = table_snapshot(database)

    response = lenient.post("/allocate", content='{"free_space_gb": NaN}', headers=JSON_HEADERS)

    assert response.status_code >= 400
    assert table_snapshot(database) == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param('{"free_space_gb": 10', "JSON decode error", id="truncated"),
        pytest.param('{"free_space_gb": 10,}', "JSON decode error", id="trailing-comma"),
        pytest.param("{free_space_gb: 10}", "JSON decode error", id="unquoted-key"),
        pytest.param('[{"free_space_gb": 10}]', "valid dictionary", id="list"),
        pytest.param('"free_space_gb"', "valid dictionary", id="string"),
        pytest.param("", "required", id="empty"),
    ],
)
def test_allocate_refuses_malformed_body(client, database, catalog, body, words):
    before = table_snapshot(database)

    response = client.post("/allocate", content=body, headers=JSON_HEADERS)

    assert response.status_code == 422, response.text
    assert words in messages(response)
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert table_snapshot(database) == before


def test_allocate_json_error_points_at_position(client, database, catalog):
    response = client.post("/allocate", content='{"free_space_gb": 10', headers=JSON_HEADERS)

    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", 20]
    assert "delimiter" in problem["ctx"]["error"]


# --- POST /release ----------------------------------------------------------------------------


@pytest.fixture
def leased(client, catalog):
    response = client.post("/allocate", json={"free_space_gb": 100, "node_id": "node-a"})
    assert len(response.json()) == 3


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({}, {"asset_id", "node_id"}, id="empty"),
        pytest.param({"asset_id": "asset-1"}, {"node_id"}, id="no-node"),
        pytest.param({"node_id": "node-a"}, {"asset_id"}, id="no-asset"),
        pytest.param({"asset_id": 1, "node_id": "node-a"}, {"asset_id"}, id="asset-int"),
        pytest.param({"asset_id": ["asset-1"], "node_id": "node-a"}, {"asset_id"}, id="asset-list"),
        pytest.param({"asset_id": None, "node_id": "node-a"}, {"asset_id"}, id="asset-null"),
        pytest.param({"asset_id": "", "node_id": "node-a"}, {"asset_id"}, id="asset-empty"),
        pytest.param({"asset_id": "a" * 201, "node_id": "node-a"}, {"asset_id"}, id="asset-long"),
        pytest.param({"asset_id": "asset-1", "node_id": 7}, {"node_id"}, id="node-int"),
        pytest.param({"asset_id": "asset-1", "node_id": "node a"}, {"node_id"}, id="node-space"),
        pytest.param({"asset_id": "asset-1", "node_id": {"id": "x"}}, {"node_id"}, id="node-obj"),
    ],
)
def test_release_refuses_bad_body(client, database, leased, body, fields):
    before = table_snapshot(database)

    response = client.post("/release", json=body)

    assert response.status_code == 422, response.text
    assert set(error_fields(response)) == fields
    assert table_snapshot(database) == before


def test_release_of_unknown_asset_is_404_naming_both(client, database, leased):
    before = table_snapshot(database)

    response = client.post("/release", json={"asset_id": "nope", "node_id": "node-a"})

    assert response.status_code == 404
    assert "nope" in messages(response)
    assert "node-a" in messages(response)
    assert table_snapshot(database) == before


def test_release_body_as_list_is_refused(client, database, leased):
    before = table_snapshot(database)

    response = client.post("/release", json=[{"asset_id": "asset-1", "node_id": "node-a"}])

    assert response.status_code == 422
    assert "valid dictionary" in messages(response)
    assert table_snapshot(database) == before


# --- POST /update-ckan ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "words"),
    [
        pytest.param(0, "greater than or equal to 1", id="0"),
        pytest.param(-3, "greater than or equal to 1", id="negative"),
        pytest.param(11, "less than or equal to 10", id="11"),
        pytest.param(5.5, "valid integer", id="5.5"),
        pytest.param("7", "valid integer", id="string-7"),
        pytest.param(True, "valid integer", id="true"),
        pytest.param(None, "valid integer", id="null"),
    ],
)
def test_update_ckan_refuses_bad_priority(client, database, catalog, priority, words):
    before = table_snapshot(database)

    response = client.post(
        "/update-ckan", json={"updates": [{"asset_id": "asset-1", "new_priority": priority}]}
    )

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "updates", 0, "new_priority"]
    assert words in problem["msg"]
    assert table_snapshot(database) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "updates", id="no-updates"),
        pytest.param({"updates": {"asset_id": "asset-1"}}, "updates", id="updates-object"),
        pytest.param({"updates": [{"asset_id": "asset-1"}]}, "new_priority", id="no-priority"),
        pytest.param({"updates": [{"new_priority": 3}]}, "asset_id", id="no-asset"),
        pytest.param(
            {"updates": [{"asset_id": "asset-1", "priority": 3}]}, "priority", id="seed-typo"
        ),
        pytest.param(
            {"updates": [{"asset_id": "", "new_priority": 3}]}, "asset_id", id="asset-empty"
        ),
        pytest.param({"updates": [{"asset_id": 1, "new_priority": 3}]}, "asset_id", id="asset-int"),
        pytest.param({"updates": [], "force": True}, "force", id="extra-top-level-field"),
    ],
)
def test_update_ckan_refuses_bad_shape(client, database, catalog, body, field):
    before = table_snapshot(database)

    response = client.post("/update-ckan", json=body)

    assert response.status_code == 422, response.text
    assert field in error_fields(response)
    assert table_snapshot(database) == before


def test_update_ckan_too_many_updates_is_refused(client, database, catalog):
    before = table_snapshot(database)
    updates = [{"asset_id": f"a-{i}", "new_priority": 5} for i in range(10_001)]

    response = client.post("/update-ckan", json={"updates": updates})

    assert response.status_code == 422
    assert "updates" in error_fields(response)
    assert "at most 10000" in messages(response)
    assert table_snapshot(database) == before


@pytest.mark.parametrize("bad_position", [0, 1, 2])
def test_update_ckan_one_bad_entry_applies_nothing(client, database, catalog, bad_position):
    before = table_snapshot(database)
    updates = [
        {"asset_id": "asset-1", "new_priority": 9},
        {"asset_id": "asset-2", "new_priority": 1},
        {"asset_id": "asset-3", "new_priority": 10},
    ]
    updates[bad_position] = {**updates[bad_position], "new_priority": 42}

    response = client.post("/update-ckan", json={"updates": updates})

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "updates", bad_position, "new_priority"]
    assert priorities(client) == {"asset-1": 5, "asset-2": 7, "asset-3": 2}
    assert table_snapshot(database) == before


def test_update_ckan_same_asset_two_priorities_is_refused(client, database, catalog):
    before = table_snapshot(database)

    response = client.post(
        "/update-ckan",
        json={
            "updates": [
                {"asset_id": "asset-2", "new_priority": 1},
                {"asset_id": "asset-1", "new_priority": 3},
                {"asset_id": "asset-1", "new_priority": 4},
            ]
        },
    )

    assert response.status_code == 422
    assert "'asset-1'" in messages(response)
    assert "two different priorities" in messages(response)
    assert priorities(client) == {"asset-1": 5, "asset-2": 7, "asset-3": 2}
    assert table_snapshot(database) == before


def test_update_ckan_same_asset_same_priority_twice_counts_once(client, catalog):
    response = client.post(
        "/update-ckan",
        json={
            "updates": [
                {"asset_id": "asset-1", "new_priority": 8},
                {"asset_id": "asset-1", "new_priority": 8},
            ]
        },
    )

    assert response.status_code == 200
    assert response.json()["updated_items"] == 1
    assert response.json()["unchanged_items"] == 0
    assert priorities(client)["asset-1"] == 8


def test_update_ckan_lists_unknown_ids_and_does_not_count_them(client, catalog):
    response = client.post(
        "/update-ckan",
        json={
            "updates": [
                {"asset_id": "ghost-1", "new_priority": 4},
                {"asset_id": "asset-1", "new_priority": 9},
                {"asset_id": "ghost-2", "new_priority": 4},
            ]
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert sorted(body["unknown_ids"]) == ["ghost-1", "ghost-2"]
    assert body["updated_items"] == 1
    assert body["unchanged_items"] == 0
    assert priorities(client) == {"asset-1": 9, "asset-2": 7, "asset-3": 2}
    assert client.get("/assets/ghost-1").status_code == 404


def test_update_ckan_counts_only_real_changes(client, catalog):
    first = client.post(
        "/update-ckan", json={"updates": [{"asset_id": "asset-1", "new_priority": 9}]}
    ).json()
    again = client.post(
        "/update-ckan", json={"updates": [{"asset_id": "asset-1", "new_priority": 9}]}
    ).json()
    mixed = client.post(
        "/update-ckan",
        json={
            "updates": [
                {"asset_id": "asset-1", "new_priority": 9},
                {"asset_id": "asset-2", "new_priority": 7},
                {"asset_id": "asset-3", "new_priority": 4},
            ]
        },
    ).json()

    assert (first["updated_items"], first["unchanged_items"]) == (1, 0)
    assert (again["updated_items"], again["unchanged_items"]) == (0, 1)
    assert (mixed["updated_items"], mixed["unchanged_items"]) == (1, 2)
    assert mixed["unknown_ids"] == []


def test_update_ckan_unchanged_priority_does_not_touch_the_row(client, database, catalog):
    before = table_snapshot(database)

    response = client.post(
        "/update-ckan", json={"updates": [{"asset_id": "asset-2", "new_priority": 7}]}
    )

    assert response.json()["unchanged_items"] == 1
    assert table_snapshot(database) == before


# --- ids the database cannot store ------------------------------------------------------------


def test_ids_with_nul_characters_are_a_client_error(lenient, database, catalog):
    before = table_snapshot(database)
    nul = "asset\x00-1"

    statuses = {
        "release": lenient.post("/release", json={"asset_id": nul, "node_id": "node-a"}),
        "update-ckan": lenient.post(
            "/update-ckan", json={"updates": [{"asset_id": nul, "new_priority": 3}]}
        ),
        "asset": lenient.get("/assets/asset%00-1"),
        "assets-cursor": lenient.get("/assets", params={"cursor": nul}),
        "allocations-asset": lenient.get("/allocations", params={"asset_id": nul}),
        "node": lenient.get("/nodes/node%00-1"),
        "nodes-cursor": lenient.get("/nodes", params={"cursor": nul}),
    }

    assert {name: r.status_code for name, r in statuses.items() if r.status_code >= 500} == {}
    assert statuses["release"].status_code in (404, 422)
    assert statuses["asset"].status_code in (404, 422)
    assert table_snapshot(database) == before
