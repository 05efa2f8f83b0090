/* setup-entries: the entries bch-setup splices into each harness's own
 * files — Claude Code's hooks, the MCP server for Claude Code, Gemini CLI
 * and Codex, the marked Markdown section — and how it knows its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit.h"
#include "json.h"
#include "setup.h"

/* Does cmd[0..n) end with the program name prog, as a path, bare or in
 * sh quotes? */
static int
ends_prog(const char *cmd, size_t n, const char *prog)
{
	size_t p = strlen(prog);

	if (n > 0 && cmd[n - 1] == '\'')
		n--;
	return n >= p && memcmp(cmd + n - p, prog, p) == 0 &&
	    (n == p || cmd[n - p - 1] == '/' || cmd[n - p - 1] == '\'');
}

/* Claude Code hooks: is this command one setup writes, in this form
 * (".../bch-drain --hook --here") or an older one (".../bch drain
 * --hook --here")? */
static int
drain_hook(const char *cmd)
{
	size_t n = strlen(cmd), t = strlen(HOOK_TAIL);

	if (n < t || strcmp(cmd + n - t, HOOK_TAIL) != 0)
		return 0;
	n -= t;
	if (ends_prog(cmd, n, "bch-drain"))
		return 1;
	return n >= 6 && memcmp(cmd + n - 6, " drain", 6) == 0 &&
	    ends_prog(cmd, n - 6, "bch");
}

/* The "hooks" array of hook group g, or -1. */
static int
group_hooks(const struct json *j, int g)
{
	int h = json_get(j, g, "hooks");

	return h >= 0 && j->t[h].type == JSON_ARRAY ? h : -1;
}

/* Does hook h run want (2), or bch-drain as an older setup wrote it (1),
 * or neither (0)? *cmd is its command's token. */
static int
hook_is(const struct json *j, int h, const char *want, int *cmd)
{
	char *str = NULL;
	int r;

	*cmd = json_get(j, h, "command");
	if (*cmd < 0 || json_string(j, *cmd, 16384, &str, NULL) < 0)
		return 0;
	r = strcmp(str, want) == 0 ? 2 : drain_hook(str);
	free(str);
	return r;
}

static int
hook_kind(const struct json *j, int g, void *arg)
{
	int h = group_hooks(j, g), i, k, c, exact = 0, old = 0;

	for (k = 0, i = h + 1; h >= 0 && k < j->t[h].size;
	    k++, i = json_next(j, i)) {
		int r = hook_is(j, i, arg, &c);
		exact += r == 2;
		old += r == 1;
	}
	if (h < 0)
		return EDIT_OTHER;
	if (j->t[h].size == 1 && exact)
		return EDIT_OURS;
	if (exact)
		return EDIT_HAS_OURS;
	if (j->t[h].size == 1 && old)
		return EDIT_OURS_OLD;
	return EDIT_OTHER;
}

struct hook_fix {
	const char *want; /* the hook command */
	struct buf quoted; /* as a JSON string */
};

/* Setup: a hook of an older setup, in any group, gets today's command
 * in place, keeping what the user added beside it (a timeout). */
static void
hook_update(const struct json *j, int g, void *arg, struct edit_change *c)
{
	struct hook_fix *f = arg;
	int h = group_hooks(j, g), i, k, cmd;

	for (k = 0, i = h + 1; h >= 0 && k < j->t[h].size;
	    k++, i = json_next(j, i))
		if (hook_is(j, i, f->want, &cmd) == 1) {
			c->tok = cmd;
			c->value = f->quoted.p;
			return;
		}
}

/* Remove: our hook goes, and its group with it when it was alone there;
 * the user's hooks beside it stay. */
static void
hook_unset(const struct json *j, int g, void *arg, struct edit_change *c)
{
	struct hook_fix *f = arg;
	int h = group_hooks(j, g), i, k, cmd;

	for (k = 0, i = h + 1; h >= 0 && k < j->t[h].size;
	    k++, i = json_next(j, i))
		if (hook_is(j, i, f->want, &cmd)) {
			c->tok = j->t[h].size == 1 ? g : i;
			return;
		}
}

/* One event's hook: 1 when doc changed. */
static int
hook_event(struct setup *s, struct buf *doc, const struct buf *orig,
    const char *event, struct hook_fix *f, const char *item, struct err *e)
{
	const char *path[] = { "hooks", event, NULL };
	int rc, added;

	if (s->remove)
		return edit_json_fix(doc, path, hook_unset, f, orig ? orig->p :
		    NULL, orig ? orig->len : 0, e);
	if ((rc = edit_json_fix(doc, path, hook_update, f, NULL, 0, e)) < 0)
		return -1;
	added = edit_json_add_item(doc, path, item, hook_kind, s->hook.p, e);
	return added < 0 ? -1 : rc | added;
}

int
setup_claude_hooks(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e)
{
	static const char *const events[] = { "UserPromptSubmit",
		"SessionStart" };
	struct hook_fix f = { s->hook.p, BUF_INIT };
	struct buf item = BUF_INIT;
	int rc[2] = { 0, 0 }, k;

	json_put_string(&f.quoted, s->hook.p, s->hook.len);
	buf_printf(&item, "{\"hooks\":[{\"type\":\"command\",\"command\":%s}]}",
	    f.quoted.p);
	for (k = 0; k < 2 && (k == 0 || rc[0] >= 0); k++)
		rc[k] = hook_event(s, doc, orig, events[k], &f, item.p, e);
	buf_free(&item);
	buf_free(&f.quoted);
	if (rc[0] < 0 || rc[1] < 0)
		return -1;
	/* The report names both; say so when one was already as it is. */
	if (rc[0] != rc[1])
		snprintf(s->what, sizeof s->what, "the %s hook",
		    events[rc[0] ? 0 : 1]);
	return 0;
}

/* The members of the MCP server entry that setup writes. */
struct mcp_fix {
	const char *const *keys;
};

static int
key_is(const struct json *j, int t, const char *key)
{
	size_t n = strlen(key);

	return j->t[t].type == JSON_STRING &&
	    (size_t)(j->t[t].end - j->t[t].start) == n &&
	    memcmp(j->s + j->t[t].start, key, n) == 0;
}

/* Remove: of mcpServers.backchannel only our members go, and the entry
 * with them when nothing of the user's (an env) is left in it. */
static void
mcp_unset(const struct json *j, int v, void *arg, struct edit_change *c)
{
	const char *const *keys = ((struct mcp_fix *)arg)->keys;
	int i, k, m, ours = 0, first = -1;

	if (!key_is(j, v - 1, "backchannel") || j->t[v].type != JSON_OBJECT)
		return;
	for (m = 0, i = v + 1; m < j->t[v].size; m++, i = json_next(j, i + 1))
		for (k = 0; keys[k]; k++)
			if (key_is(j, i, keys[k])) {
				ours++;
				if (first < 0)
					first = i + 1;
			}
	if (ours)
		c->tok = ours == j->t[v].size ? v : first;
}

static int
mcp_json(struct setup *s, struct buf *doc, const struct buf *orig,
    const char *type, struct err *e)
{
	const char *top[] = { "mcpServers", NULL };
	const char *path[] = { "mcpServers", "backchannel", NULL, NULL };
	const char *keys[] = { "type", "command", "args", NULL };
	struct mcp_fix f = { type ? keys : keys + 1 };
	struct buf v = BUF_INIT, cmd = BUF_INIT;
	const char *vals[3];
	int rc = 0, k;

	if (s->remove)
		return edit_json_fix(doc, top, mcp_unset, &f, orig ? orig->p :
		    NULL, orig ? orig->len : 0, e);
	buf_printf(&v, "\"%s\"", type ? type : "");
	json_put_string(&cmd, s->bch, strlen(s->bch));
	vals[0] = v.p;
	vals[1] = cmd.p;
	vals[2] = "[\"mcp\",\"--here\"]";
	if (!edit_json_has(doc->p, doc->len, path)) {
		/* New: the whole entry at once, our members in our order. */
		buf_reset(&v);
		if (type)
			buf_printf(&v, "{\"type\":\"%s\",", type);
		else
			buf_addc(&v, '{');
		buf_printf(&v, "\"command\":%s,\"args\":[\"mcp\",\"--here\"]}",
		    cmd.p);
		rc = edit_json_set(doc, path, v.p, e);
	} else {
		/* The user's: only our members, the others kept (an env). */
		for (k = type ? 0 : 1; keys[k] && rc >= 0; k++) {
			int r;
			path[2] = keys[k];
			r = edit_json_set(doc, path, vals[k], e);
			rc = r < 0 ? -1 : rc | r;
		}
	}
	buf_free(&v);
	buf_free(&cmd);
	return rc;
}
int
setup_claude_mcp(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e)
{
	return mcp_json(s, doc, orig, "stdio", e);
}

int
setup_gemini_mcp(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e)
{
	return mcp_json(s, doc, orig, NULL, e);
}

/* --remove took a block or key line of ours out of doc (rc 1). When it
 * ended the file, the line end now last is the one setup put after the
 * user's last line, which had none: when doc is the backup (orig) and
 * that line end, it goes, so the file is again byte for byte the user's. */
static int
text_del(struct buf *doc, const struct buf *orig, int rc)
{
	size_t n = doc->len;

	if (rc != 1 || !orig || orig->len == 0 ||
	    orig->p[orig->len - 1] == '\n' || n == 0 || doc->p[n - 1] != '\n')
		return rc;
	if (n - 1 != orig->len || memcmp(doc->p, orig->p, n - 1) != 0)
		return rc;
	doc->len--;
	doc->p[doc->len] = 0;
	return rc;
}

/* A TOML basic string. */
static void
toml_string(struct buf *b, const char *str)
{
	buf_addc(b, '"');
	for (; *str; str++) {
		unsigned char c = (unsigned char)*str;
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_printf(b, "\\u%04x", c);
		else
			buf_addc(b, (char)c);
	}
	buf_addc(b, '"');
}

int
setup_codex_toml(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e)
{
	static const char *const table[] = { "mcp_servers", "backchannel",
		NULL };
	static const char *const keys[] = { "command", "args", NULL };
	const char *vals[] = { NULL, "[\"mcp\", \"--here\"]", NULL };
	struct buf cmd = BUF_INIT;
	int rc;

	if (s->remove)
		return text_del(doc, orig, edit_toml_del(doc, table, keys, e));
	toml_string(&cmd, s->bch);
	vals[0] = cmd.p;
	rc = edit_toml_set(doc, table, keys, vals, e);
	buf_free(&cmd);
	return rc;
}

int
setup_section(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e)
{
	if (s->remove)
		return text_del(doc, orig, edit_md_del(doc, BEGIN, END, e));
	return edit_md_set(doc, BEGIN, END, s->section.p, e);
}
