/*
 * jira_adf.c — Atlassian Document Format to Markdown.
 *
 * REST v3 returns descriptions, comment bodies and textarea custom fields
 * as ADF (https://developer.atlassian.com/cloud/jira/platform/apis/document/
 * structure/): a tree of block nodes (paragraph, heading, lists, codeBlock,
 * blockquote, table, panel, ...) whose leaves are inline nodes (text with
 * marks, mention, emoji, hardBreak, inlineCard, date, status, ...).
 *
 * Rendering is by subtree: a block renders into its own buffer, and a
 * container (list item, blockquote) then prefixes that buffer's lines, so
 * nesting needs no global indentation state. A node we do not know
 * degrades to its text: its `text`, its children, or attrs.text, so a new
 * node type loses formatting, never words. Recursion is bounded
 * (MAX_DEPTH) because the tree comes from outside.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jira.h"

#define MAX_DEPTH 48

typedef struct md {
    char *s;
    size_t n, cap;
    int oom;
    int in_table; /* hard breaks and newlines become <br> */
} md;

static void put(md *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void puts_(md *b, const char *s) { put(b, s, s ? strlen(s) : 0); }

static void reset(md *b)
{
    b->n = 0;
    if (b->s)
        b->s[0] = '\0';
}

static const char *type_of(json_object *node) { return ingest_json_str(node, "type"); }

static int is(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

static const char *const block_types[] = {
    "doc",           "paragraph",    "heading",     "bulletList",   "orderedList", "listItem",
    "codeBlock",     "blockquote",   "rule",        "table",        "tableRow",    "tableHeader",
    "tableCell",     "panel",        "expand",      "nestedExpand", "taskList",    "taskItem",
    "decisionList",  "decisionItem", "mediaSingle", "mediaGroup",   "blockCard",   "embedCard",
    "layoutSection", "layoutColumn",
};

static int is_block(json_object *node)
{
    const char *t = type_of(node);
    for (size_t i = 0; t && i < sizeof block_types / sizeof block_types[0]; i++)
        if (strcmp(t, block_types[i]) == 0)
            return 1;
    return 0;
}

static void node_md(md *out, json_object *node, int depth);

/* Children of `node`: blocks separated by `sep`, inline runs as they come. */
static void children(md *out, json_object *node, const char *sep, int depth)
{
    json_object *content = ingest_json_get(node, "content");
    if (!json_object_is_type(content, json_type_array) || depth > MAX_DEPTH)
        return;
    int prev_block = -1; /* -1: nothing yet */
    for (size_t i = 0; i < json_object_array_length(content); i++) {
        json_object *child = json_object_array_get_idx(content, i);
        int block = is_block(child);
        size_t before = out->n;
        if (prev_block >= 0 && (block || prev_block))
            puts_(out, sep);
        size_t mark = out->n;
        node_md(out, child, depth + 1);
        if (out->n == mark && !out->oom) { /* rendered nothing: drop the separator */
            out->n = before;
            if (out->s)
                out->s[out->n] = '\0';
            continue;
        }
        prev_block = block;
    }
}

/* `text` with every line prefixed: `first` for the first, `rest` after;
 * on an empty line the prefix loses its trailing blanks. */
static void prefixed(md *out, const char *text, const char *first, const char *rest)
{
    const char *p = text ? text : "";
    for (int line = 0; *p || line == 0; line++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *pre = line == 0 ? first : rest;
        size_t plen = strlen(pre);
        if (len == 0)
            while (plen > 0 && pre[plen - 1] == ' ')
                plen--;
        if (line > 0)
            puts_(out, "\n");
        put(out, pre, plen);
        put(out, p, len);
        if (!nl)
            break;
        p = nl + 1;
    }
}

/* Render `node`'s children into a buffer of their own; caller frees .s. */
static md sub(const md *parent, json_object *node, const char *sep, int depth)
{
    md b = {.in_table = parent->in_table};
    children(&b, node, sep, depth);
    return b;
}

/* ------------------------------------------------------------- inlines */

/* Wrap the non-blank middle of `text` in open/close, so "**bold **" never
 * happens (Markdown does not render emphasis that ends in a blank). */
static void wrap(md *out, const char *text, const char *open, const char *close)
{
    size_t n = strlen(text), a = 0, z = n;
    while (a < n && (text[a] == ' ' || text[a] == '\t'))
        a++;
    while (z > a && (text[z - 1] == ' ' || text[z - 1] == '\t'))
        z--;
    if (a == z) {
        put(out, text, n);
        return;
    }
    put(out, text, a);
    puts_(out, open);
    put(out, text + a, z - a);
    puts_(out, close);
    put(out, text + z, n - z);
}

static json_object *mark_of(json_object *node, const char *type)
{
    json_object *marks = ingest_json_get(node, "marks");
    for (size_t i = 0;
         json_object_is_type(marks, json_type_array) && i < json_object_array_length(marks); i++) {
        json_object *m = json_object_array_get_idx(marks, i);
        if (is(type_of(m), type))
            return m;
    }
    return NULL;
}

/* A text node: code innermost, then emphasis, strong, strike, sub/sup,
 * the link outermost. */
static void text_md(md *out, json_object *node)
{
    const char *text = ingest_json_str(node, "text");
    if (!text)
        return;
    md a = {0}, b = {0};
    if (mark_of(node, "code"))
        wrap(&a, text, strchr(text, '`') ? "`` " : "`", strchr(text, '`') ? " ``" : "`");
    else
        puts_(&a, text);
    static const struct {
        const char *mark, *open, *close;
    } styles[] = {{"em", "*", "*"},
                  {"strong", "**", "**"},
                  {"strike", "~~", "~~"},
                  {"underline", "", ""},
                  {"textColor", "", ""}};
    for (size_t i = 0; i < sizeof styles / sizeof styles[0] && !a.oom; i++) {
        if (!mark_of(node, styles[i].mark) || !styles[i].open[0])
            continue;
        reset(&b);
        wrap(&b, a.s ? a.s : "", styles[i].open, styles[i].close);
        md t = a;
        a = b;
        b = t;
    }
    json_object *sub_ = mark_of(node, "subsup");
    const char *kind = ingest_json_str(sub_, "attrs.type");
    if (sub_ && (is(kind, "sub") || is(kind, "sup"))) {
        reset(&b);
        wrap(&b, a.s ? a.s : "", is(kind, "sub") ? "<sub>" : "<sup>",
             is(kind, "sub") ? "</sub>" : "</sup>");
        md t = a;
        a = b;
        b = t;
    }
    const char *href = ingest_json_str(mark_of(node, "link"), "attrs.href");
    if (href) {
        puts_(out, "[");
        puts_(out, a.s);
        puts_(out, "](");
        puts_(out, href);
        puts_(out, ")");
    } else {
        puts_(out, a.s);
    }
    out->oom |= a.oom | b.oom;
    free(a.s);
    free(b.s);
}

/* attrs.timestamp (milliseconds since the epoch, as a string) as a date. */
static void date_md(md *out, json_object *node)
{
    int64_t ms = 0;
    if (!ingest_json_int64(node, "attrs.timestamp", &ms))
        return;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char day[32];
    if (gmtime_r(&s, &tm) && strftime(day, sizeof day, "%Y-%m-%d", &tm) > 0)
        puts_(out, day);
}

static void mention_md(md *out, json_object *node)
{
    const char *text = ingest_json_str(node, "attrs.text");
    const char *id = ingest_json_str(node, "attrs.id");
    if (text && text[0] == '@')
        puts_(out, text);
    else if (text || id) {
        puts_(out, "@");
        puts_(out, text ? text : id);
    }
}

static void media_md(md *out, json_object *node)
{
    const char *alt = ingest_json_str(node, "attrs.alt");
    const char *url = ingest_json_str(node, "attrs.url");
    if (is(ingest_json_str(node, "attrs.type"), "external") && url) {
        puts_(out, "![");
        puts_(out, alt ? alt : "");
        puts_(out, "](");
        puts_(out, url);
        puts_(out, ")");
        return;
    }
    puts_(out, "[attachment");
    if (alt) {
        puts_(out, ": ");
        puts_(out, alt);
    }
    puts_(out, "]");
}

/* An inline node (or an unknown node, rendered as its text). */
static int inline_md(md *out, json_object *node)
{
    const char *t = type_of(node);
    if (is(t, "text"))
        text_md(out, node);
    else if (is(t, "hardBreak"))
        puts_(out, out->in_table ? "<br>" : "\\\n");
    else if (is(t, "mention"))
        mention_md(out, node);
    else if (is(t, "emoji"))
        puts_(out, ingest_json_str(node, "attrs.text") ? ingest_json_str(node, "attrs.text")
                                                       : ingest_json_str(node, "attrs.shortName"));
    else if (is(t, "inlineCard") && ingest_json_str(node, "attrs.url")) {
        puts_(out, "<");
        puts_(out, ingest_json_str(node, "attrs.url"));
        puts_(out, ">");
    } else if (is(t, "date"))
        date_md(out, node);
    else if (is(t, "status")) {
        puts_(out, "[");
        puts_(out, ingest_json_str(node, "attrs.text"));
        puts_(out, "]");
    } else if (is(t, "media") || is(t, "mediaInline"))
        media_md(out, node);
    else
        return 0;
    return 1;
}

/* -------------------------------------------------------------- blocks */

static void list_md(md *out, json_object *list, int ordered, int depth)
{
    json_object *items = ingest_json_get(list, "content");
    int64_t n = 1;
    if (ordered && (!ingest_json_int64(list, "attrs.order", &n) || n < 0))
        n = 1;
    for (size_t i = 0;
         json_object_is_type(items, json_type_array) && i < json_object_array_length(items);
         i++, n++) {
        json_object *item = json_object_array_get_idx(items, i);
        char marker[32], pad[32];
        if (ordered)
            snprintf(marker, sizeof marker, "%" PRId64 ". ", n);
        else
            snprintf(marker, sizeof marker, "- ");
        snprintf(pad, sizeof pad, "%*s", (int)strlen(marker), "");
        md body = sub(out, item, "\n", depth);
        if (i > 0)
            puts_(out, "\n");
        prefixed(out, body.s, marker, pad);
        out->oom |= body.oom;
        free(body.s);
    }
}

/* taskList / decisionList: items hold inline content directly. */
static void checklist_md(md *out, json_object *list, int tasks, int depth)
{
    json_object *items = ingest_json_get(list, "content");
    for (size_t i = 0;
         json_object_is_type(items, json_type_array) && i < json_object_array_length(items); i++) {
        json_object *item = json_object_array_get_idx(items, i);
        const char *state = ingest_json_str(item, "attrs.state");
        const char *marker = !tasks ? "- " : is(state, "DONE") ? "- [x] " : "- [ ] ";
        md body = sub(out, item, "\n", depth);
        if (i > 0)
            puts_(out, "\n");
        prefixed(out, body.s, marker, tasks ? "      " : "  ");
        out->oom |= body.oom;
        free(body.s);
    }
}

static void code_md(md *out, json_object *node)
{
    const char *lang = ingest_json_str(node, "attrs.language");
    json_object *content = ingest_json_get(node, "content");
    puts_(out, "```");
    puts_(out, lang);
    puts_(out, "\n");
    for (size_t i = 0;
         json_object_is_type(content, json_type_array) && i < json_object_array_length(content);
         i++)
        puts_(out, ingest_json_str(json_object_array_get_idx(content, i), "text"));
    puts_(out, "\n```");
}

/* One table cell on one line: newlines become <br>, '|' is escaped. */
static void cell_md(md *out, json_object *cell, int depth)
{
    md b = {.in_table = 1};
    children(&b, cell, "<br>", depth);
    puts_(out, " ");
    for (size_t i = 0; i < b.n; i++) {
        if (b.s[i] == '\n')
            puts_(out, "<br>");
        else if (b.s[i] == '|')
            puts_(out, "\\|");
        else
            put(out, &b.s[i], 1);
    }
    puts_(out, " |");
    out->oom |= b.oom;
    free(b.s);
}

/* The first row is the header row (Markdown needs one), whatever its cells. */
static void table_md(md *out, json_object *table, int depth)
{
    json_object *rows = ingest_json_get(table, "content");
    size_t n_rows = json_object_is_type(rows, json_type_array) ? json_object_array_length(rows) : 0;
    size_t cols = 0;
    for (size_t r = 0; r < n_rows; r++) {
        json_object *cells = ingest_json_get(json_object_array_get_idx(rows, r), "content");
        size_t n =
            json_object_is_type(cells, json_type_array) ? json_object_array_length(cells) : 0;
        cols = n > cols ? n : cols;
    }
    for (size_t r = 0; r < n_rows && cols > 0; r++) {
        json_object *cells = ingest_json_get(json_object_array_get_idx(rows, r), "content");
        size_t n =
            json_object_is_type(cells, json_type_array) ? json_object_array_length(cells) : 0;
        if (r > 0)
            puts_(out, "\n");
        puts_(out, "|");
        for (size_t c = 0; c < cols; c++) {
            if (c < n)
                cell_md(out, json_object_array_get_idx(cells, c), depth + 1);
            else
                puts_(out, "  |");
        }
        if (r == 0) {
            puts_(out, "\n|");
            for (size_t c = 0; c < cols; c++)
                puts_(out, " --- |");
        }
    }
}

/* blockquote and panel: the content, quoted. */
static void quote_md(md *out, json_object *node, int depth)
{
    md body = sub(out, node, "\n\n", depth);
    prefixed(out, body.s, "> ", "> ");
    out->oom |= body.oom;
    free(body.s);
}

static void heading_md(md *out, json_object *node, int depth)
{
    int64_t level = 1;
    if (!ingest_json_int64(node, "attrs.level", &level) || level < 1)
        level = 1;
    if (level > 6)
        level = 6;
    for (int64_t i = 0; i < level; i++)
        puts_(out, "#");
    puts_(out, " ");
    children(out, node, " ", depth);
}

static int block_md(md *out, json_object *node, int depth)
{
    const char *t = type_of(node);
    if (is(t, "doc") || is(t, "layoutSection") || is(t, "layoutColumn"))
        children(out, node, "\n\n", depth);
    else if (is(t, "paragraph") || is(t, "taskItem") || is(t, "decisionItem"))
        children(out, node, " ", depth);
    else if (is(t, "heading"))
        heading_md(out, node, depth);
    else if (is(t, "bulletList") || is(t, "orderedList"))
        list_md(out, node, is(t, "orderedList"), depth);
    else if (is(t, "taskList") || is(t, "decisionList"))
        checklist_md(out, node, is(t, "taskList"), depth);
    else if (is(t, "codeBlock"))
        code_md(out, node);
    else if (is(t, "blockquote") || is(t, "panel"))
        quote_md(out, node, depth);
    else if (is(t, "rule"))
        puts_(out, "---");
    else if (is(t, "table"))
        table_md(out, node, depth);
    else if (is(t, "expand") || is(t, "nestedExpand")) {
        const char *title = ingest_json_str(node, "attrs.title");
        if (title && *title) {
            puts_(out, "**");
            puts_(out, title);
            puts_(out, "**\n\n");
        }
        children(out, node, "\n\n", depth);
    } else if ((is(t, "blockCard") || is(t, "embedCard")) && ingest_json_str(node, "attrs.url")) {
        puts_(out, "<");
        puts_(out, ingest_json_str(node, "attrs.url"));
        puts_(out, ">");
    } else if (is(t, "listItem") || is(t, "tableRow") || is(t, "tableCell") ||
               is(t, "tableHeader") || is(t, "mediaSingle") || is(t, "mediaGroup"))
        children(out, node, "\n", depth); /* outside their parent: just the content */
    else
        return 0;
    return 1;
}

/* Anything else: its text, its children, or attrs.text. */
static void unknown_md(md *out, json_object *node, int depth)
{
    const char *text = ingest_json_str(node, "text");
    if (text) {
        puts_(out, text);
        return;
    }
    if (ingest_json_get(node, "content")) {
        children(out, node, "\n\n", depth);
        return;
    }
    puts_(out, ingest_json_str(node, "attrs.text"));
}

static void node_md(md *out, json_object *node, int depth)
{
    if (depth > MAX_DEPTH || !json_object_is_type(node, json_type_object))
        return;
    if (!block_md(out, node, depth) && !inline_md(out, node))
        unknown_md(out, node, depth);
}

char *jira_adf_to_markdown(json_object *adf)
{
    if (json_object_is_type(adf, json_type_string))
        return strdup(json_object_get_string(adf));
    if (!json_object_is_type(adf, json_type_object))
        return NULL;
    md out = {0};
    node_md(&out, adf, 0);
    if (out.oom) {
        free(out.s);
        return NULL;
    }
    while (out.n > 0 && (out.s[out.n - 1] == '\n' || out.s[out.n - 1] == ' '))
        out.s[--out.n] = '\0';
    return out.s ? out.s : strdup("");
}
