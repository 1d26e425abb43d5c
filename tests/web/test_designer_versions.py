"""The designer's version history, rollback, relations overview and app deletion, on SQLite and PostgreSQL: the
history lists every version; the diff names added, renamed and changed fields; a rollback shows its plan, then
applies it as a new version and archived values come back; a refused rollback changes nothing and links the
records in the way; the relations page draws the app and lists its relations; deleting needs the app's key typed,
archives, and an app of the same name brings the records back; only designers reach any of it."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from engine.designer.drafts import DraftService
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_audit
from engine.storage.records import RecordService
from tests.web.conftest import csrf, log_in_as

HX = {"HX-Request": "true"}
Doc = dict[str, Any]


def _post(client: TestClient[Litestar], url: str, data: dict[str, Any], htmx: bool = False) -> Any:
    return client.post(url, data=data, headers={**csrf(client), **(HX if htmx else {})}, follow_redirects=False)


def _fields(doc: Doc, entity: str = "customer") -> dict[str, Any]:
    return doc["$defs"][entity]["properties"]


def _rename(doc: Doc, old: str, new: str) -> None:
    """Rename a customer field in place, keeping its position (as the designer does)."""
    props = _fields(doc)
    items = list(props.items())
    props.clear()
    for key, prop in items:
        if key == old:
            prop["x-crm-field"]["renamedFrom"] = old
            key = new
        props[key] = prop


def _version(db: Database) -> int:
    return AppService(db).history("mini")[-1].version


def test_history_lists_every_version_newest_first(client: TestClient[Litestar], web_db: Database,
                                                  mini_doc: Doc) -> None:
    _fields(mini_doc)["code"] = {"title": "Code", "x-crm-field": {"kind": "text"}}
    AppService(web_db).apply(mini_doc, actor="alice", note="a code for each customer")

    page = client.get("/designer/mini/versions")

    assert page.status_code == 200
    html = page.text
    assert html.index('id="version-2"') < html.index('id="version-1"')
    assert "alice" in html and "a code for each customer" in html and "add field customer.code" in html
    assert 'id="rollback-1"' in html and 'id="rollback-2"' not in html  # only older versions roll back
    assert 'href="/designer/mini/versions/1/export"' in html
    # the default diff: the previous version against the current one
    assert 'id="version-diff"' in html and "Changes from version 1 to version 2" in html
    assert "new field <code>code</code>" in html


def test_diff_names_added_renamed_and_changed_fields(client: TestClient[Litestar], web_db: Database,
                                                     mini_doc: Doc) -> None:
    apps = AppService(web_db)
    _fields(mini_doc)["code"] = {"title": "Code", "x-crm-field": {"kind": "text"}}
    apps.apply(mini_doc)
    _rename(mini_doc, "phone", "mobile")
    _fields(mini_doc)["age"]["x-crm-field"] = {"kind": "decimal", "scale": 1}
    apps.apply(mini_doc)

    html = client.get("/designer/mini/versions/diff", params={"from": "1", "to": "3"}).text

    changes = re.search(r'<ul class="version-changes" id="diff-changes">(.*?)</ul>', html, re.S)
    assert changes, "the page lists no changes"
    items = [unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", li)).strip())
             for li in re.findall(r"<li[^>]*>(.*?)</li>", changes.group(1), re.S)]
    assert "Customer › Code added new field code" in items
    assert "Customer › Phone renamed field key phone → mobile" in items
    assert 'Customer › Age changed kind "integer" → "decimal"' in items
    assert not any("Mobile" in i and "added" in i for i in items)  # a rename is one change, not two
    # only the section for htmx; the two versions chosen
    part = client.get("/designer/mini/versions/diff", params={"from": "2", "to": "3"}, headers=HX).text
    assert part.lstrip().startswith("<section") and "<html" not in part
    assert "Code" not in part and "Phone" in part
    assert client.get("/designer/mini/versions/diff", params={"from": "9", "to": "1"}).status_code == 404


def test_rollback_shows_the_plan_then_brings_removed_values_back(client: TestClient[Litestar], web_db: Database,
                                                                 mini_doc: Doc) -> None:
    records = RecordService(web_db, "mini")
    li = records.create("customer", {"name": "Li Wei", "notes": "likes tea"})
    _fields(mini_doc).pop("notes")
    AppService(web_db).apply(mini_doc)
    assert "notes" not in records.get("customer", li["id"])

    review = client.get("/designer/mini/versions/1/rollback").text

    assert "restore field customer.notes from the archive (values kept)" in review
    assert 'id="rollback-confirm"' in review and 'name="current" value="2"' in review
    assert "Notes" in review and 'id="rollback-draft-note"' not in review
    done = _post(client, "/designer/mini/versions/1/rollback", {"current": "2"})
    assert done.status_code == 303 and done.headers["location"] == "/designer/mini/versions?rolled_back=1"
    assert records.get("customer", li["id"])["notes"] == "likes tea"
    history = AppService(web_db).history("mini")
    assert history[-1].version == 3 and history[-1].note == "rollback to version 1"
    assert history[-1].applied_by == "admin@example.com"
    page = client.get(done.headers["location"]).text
    assert 'id="rollback-notice"' in page and "version 3 is version 1" in page


def test_a_rollback_that_would_lose_values_is_refused_and_changes_nothing(client: TestClient[Litestar],
                                                                          web_db: Database, mini_doc: Doc) -> None:
    records = RecordService(web_db, "mini")
    bob = records.create("customer", {"name": "Bob", "age": 7})
    _fields(mini_doc)["age"]["x-crm-field"] = {"kind": "decimal", "scale": 1}
    AppService(web_db).apply(mini_doc)
    records.update("customer", bob["id"], {"age": "7.5"})
    exported = AppService(web_db).export("mini")

    review = client.get("/designer/mini/versions/1/rollback").text

    assert 'id="plan-blockers"' in review and "cannot become integer" in review
    assert f'href="/apps/mini/customer/{bob["id"]}"' in review  # the record in the way, linked
    assert 'id="rollback-confirm"' not in review
    refused = _post(client, "/designer/mini/versions/1/rollback", {"current": "2"})
    assert refused.status_code == 409 and 'id="rollback-refused"' in refused.text
    assert "cannot become integer" in refused.text
    assert _version(web_db) == 2 and AppService(web_db).export("mini") == exported
    assert str(records.get("customer", bob["id"])["age"]) == "7.5"


def test_a_rollback_of_a_stale_page_is_not_applied(client: TestClient[Litestar], web_db: Database,
                                                   mini_doc: Doc) -> None:
    _fields(mini_doc).pop("notes")
    AppService(web_db).apply(mini_doc)
    stale = _post(client, "/designer/mini/versions/1/rollback", {"current": "1"})
    assert stale.status_code == 409 and 'id="designer-alert"' in stale.text
    assert _version(web_db) == 2


def test_the_rollback_review_mentions_an_open_draft_and_keeps_it(client: TestClient[Litestar], web_db: Database,
                                                                 mini_doc: Doc) -> None:
    _fields(mini_doc).pop("notes")
    AppService(web_db).apply(mini_doc)
    DraftService(web_db, "bob").edit("mini", 0, lambda doc: doc.update(title="Mini CRM, renamed"))

    review = client.get("/designer/mini/versions/1/rollback").text

    assert 'id="rollback-draft-note"' in review and "based on version 2" in review and "bob" in review
    assert _post(client, "/designer/mini/versions/1/rollback", {"current": "2"}).status_code == 303
    draft = DraftService(web_db, "bob").get("mini")
    assert draft.revision == 1 and draft.document["title"] == "Mini CRM, renamed"


def test_each_version_downloads_as_json(client: TestClient[Litestar], web_db: Database, mini_doc: Doc) -> None:
    _fields(mini_doc)["code"] = {"title": "Code", "x-crm-field": {"kind": "text"}}
    AppService(web_db).apply(mini_doc)

    response = client.get("/designer/mini/versions/1/export")

    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="mini-v1.json"'
    assert response.json()["x-crm-app"]["version"] == 1 and "code" not in response.json()["$defs"]["customer"][
        "properties"]
    assert client.get("/designer/mini/versions/7/export").status_code == 404


def test_relations_page_draws_the_app_and_lists_its_relations(client: TestClient[Litestar]) -> None:
    html = client.get("/designer/mini/relations").text

    assert 'id="relations-diagram"' in html and "<svg" in html and "Entities of Mini CRM" in html
    row = re.search(r'<tr id="relation-customer-company">(.*?)</tr>', html, re.S)
    assert row and ">one<" in row.group(1) and "empties this field" in row.group(1)
    assert 'href="/designer/mini/company"' in row.group(1)
    many = re.search(r'<tr id="relation-customer-partners">(.*?)</tr>', html, re.S)
    assert many and ">many<" in many.group(1)
    assert 'id="relations-entity-customer"' in html and 'href="/designer/mini/customer"' in html


def test_relations_page_draws_the_draft_or_the_published_app_while_the_draft_has_problems(
        client: TestClient[Litestar], web_db: Database) -> None:
    drafts = DraftService(web_db, "admin@example.com")

    def relabel(doc: Doc) -> None:
        _fields(doc)["company"]["title"] = "Employer"

    drafts.edit("mini", 0, relabel)
    assert "Employer" in client.get("/designer/mini/relations").text

    def break_it(doc: Doc) -> None:
        _fields(doc)["company"]["x-crm-field"]["entity"] = "nowhere"

    drafts.edit("mini", 1, break_it)
    html = client.get("/designer/mini/relations").text
    assert 'id="relations-draft-problems"' in html and "published version 1" in html
    assert "Employer" not in html and 'id="relation-customer-company"' in html


def test_delete_needs_the_typed_key_archives_and_the_same_name_restores(client: TestClient[Litestar],
                                                                         web_db: Database, mini_doc: Doc) -> None:
    records = RecordService(web_db, "mini")
    li = records.create("customer", {"name": "Li Wei", "notes": "likes tea"})
    DraftService(web_db, "admin@example.com").edit("mini", 0, lambda doc: doc.update(title="Changed"))
    assert 'id="delete-mini"' in client.get("/designer").text
    assert 'id="delete-app-link"' in client.get("/designer/mini").text

    review = client.get("/designer/mini/delete").text
    assert 'id="delete-confirm-name"' in review and "Customer: 1 record" in review
    assert 'id="delete-draft-note"' in review

    wrong = _post(client, "/designer/mini/delete", {"confirm_name": "Mini CRM"})
    assert wrong.status_code == 422 and 'id="delete-confirm-error"' in wrong.text
    assert "mini" in {a.name for a in AppService(web_db).list()}

    done = _post(client, "/designer/mini/delete", {"confirm_name": "mini"})
    assert done.status_code == 303 and done.headers["location"] == "/designer"
    assert "mini" not in {a.name for a in AppService(web_db).list()}
    assert 'id="app-mini"' not in client.get("/designer").text
    assert client.get("/apps/mini/customer").status_code == 404
    with web_db.read() as conn:
        last = conn.execute(sa.select(crm_audit.c.actor, crm_audit.c.action, crm_audit.c.target)
                            .order_by(crm_audit.c.id.desc()).limit(1)).one()
    assert tuple(last) == ("admin@example.com", "app_deleted", "mini")
    assert all(d.app != "mini" for d in DraftService(web_db, "admin@example.com").list())  # the draft is gone

    AppService(web_db).apply(mini_doc)  # an app of the same name: its entities come back with their records
    assert records.get("customer", li["id"])["notes"] == "likes tea"
    assert len(AppService(web_db).history("mini")) >= 2  # the history was kept


@pytest.mark.parametrize("url", ["/designer/mini/versions", "/designer/mini/versions/diff?from=1&to=1",
                                 "/designer/mini/versions/1/export", "/designer/mini/versions/1/rollback",
                                 "/designer/mini/relations", "/designer/mini/delete"])
def test_non_designers_get_403(anonymous: TestClient[Litestar], web_db: Database, url: str) -> None:
    log_in_as(anonymous, web_db, "viewer@example.com", roles=("viewer",))
    assert anonymous.get(url).status_code == 403


def test_non_designers_cannot_roll_back_or_delete(anonymous: TestClient[Litestar], web_db: Database) -> None:
    log_in_as(anonymous, web_db, "viewer@example.com", roles=("viewer",))
    assert _post(anonymous, "/designer/mini/versions/1/rollback", {"current": "1"}).status_code == 403
    assert _post(anonymous, "/designer/mini/delete", {"confirm_name": "mini"}).status_code == 403
    assert "mini" in {a.name for a in AppService(web_db).list()}
