"""Atlassian Document Format -> Markdown in the jira connector.

fixtures/jira/adf_cases.json holds one case per node type the connector
renders (paragraph, text marks, heading, bullet and ordered lists with
nesting, codeBlock, blockquote, rule, mention, emoji, inlineCard, hardBreak,
date, status, table, panel, expand, taskList, decisionList, media) and
unknown nodes, which degrade to their text (a `text`, their children, or
attrs.text). Node examples follow Atlassian's node reference
(developer.atlassian.com/cloud/jira/platform/apis/document/nodes/*). Each
case is one issue's description and one comment body at the mock; one sync
stores both, and the normalized payloads must carry exactly the expected
Markdown.
"""
import json
from pathlib import Path

from mock_jira import MockJira
from test_jira import basic_connection, jira, signals, start, sync  # noqa: F401

CASES = json.loads((Path(__file__).parent / "fixtures" / "jira" / "adf_cases.json").read_text())


def test_every_adf_case_renders_as_expected(daemon_factory, pg_cluster, db_url, jira):  # noqa: F811
    api = jira()
    by_issue, by_comment = {}, {}
    for case in CASES:
        issue = api.add_issue("DOC", summary=case["name"], description=case["adf"])
        by_issue[issue["id"]] = case
        by_comment[api.comment(issue, case["adf"])["id"]] = case
    d = start(daemon_factory, api)
    cid = basic_connection(d, api)
    sync(pg_cluster, db_url, d, cid)
    got = {r[2]["id"]: r[2]["description"] for r in signals(pg_cluster, db_url, "issue_created")}
    assert len(got) == len(CASES)
    bad = {by_issue[i]["name"]: (md, by_issue[i]["markdown"]) for i, md in got.items()
           if md != by_issue[i]["markdown"]}
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)
    bodies = {r[2]["id"]: r[2]["body"] for r in signals(pg_cluster, db_url, "comment_added")}
    assert {by_comment[i]["name"]: b for i, b in bodies.items()} == \
        {c["name"]: c["markdown"] for c in CASES}


def test_cases_cover_every_handled_node_type():
    """The fixture set names every node and mark the renderer handles."""
    seen = set()

    def walk(n):
        if isinstance(n, dict):
            if "type" in n:
                seen.add(n["type"])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)
    for c in CASES:
        walk(c["adf"])
    handled = {"doc", "paragraph", "text", "strong", "em", "code", "strike", "underline", "link",
               "subsup", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
               "blockquote", "rule", "mention", "emoji", "inlineCard", "hardBreak", "date",
               "status", "table", "tableRow", "tableHeader", "tableCell", "panel", "expand",
               "taskList", "taskItem", "decisionList", "decisionItem", "mediaSingle", "media"}
    assert handled <= seen, handled - seen
    assert {"futureBlock", "futureInline", "sparkle", "wrapper"} <= seen  # unknown ones
