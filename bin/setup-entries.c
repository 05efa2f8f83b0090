/* setup-entries: the entries bch-setup splices into each harness's own
 * files — Claude Code's hooks, the MCP server for Claude Code, Gemini CLI
 * and Codex, the marked Markdown section — and how it knows its own. */
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

static int
hook_kind(const struct json *j, int g, void *arg)
{
	const char *want = arg;
	int h, i, k, exact = 0, old = 0;

	if (j->t[g].type != JSON_OBJECT)
		return EDIT_OTHER;
	h = json_get(j, g, "hooks");
	if (h < 0 || j->t[h].type != JSON_ARRAY)
		return EDIT_OTHER;
	for (k = 0, i = h + 1; k < j->t[h].size; k++, i = json_next(j, i)) {
		char *cmd = NULL;
		int c = json_get(j, i, "command");
		if (c < 0 || json_string(j, c, 16384, &cmd, NULL) < 0)
			continue;
		if (strcmp(cmd, want) == 0)
			exact++;
		else if (drain_hook(cmd))
			old++;
		free(cmd);
	}
	if (j->t[h].size == 1 && exact)
		return EDIT_OURS;
	if (exact)
		return EDIT_HAS_OURS;
	if (j->t[h].size == 1 && old)
		return EDIT_OURS_OLD;
	return EDIT_OTHER;
}

int
setup_claude_hooks(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e)
{
	static const char *const events[] = { "UserPromptSubmit",
		"SessionStart" };
	struct buf item = BUF_INIT;
	size_t k;
	int rc = 0;

	buf_adds(&item, "{\"hooks\":[{\"type\":\"command\",\"command\":");
	json_put_string(&item, s->hook.p, s->hook.len);
	buf_adds(&item, "}]}");
	for (k = 0; k < 2 && rc >= 0; k++) {
		const char *path[] = { "hooks", events[k], NULL };
		if (s->remove)
			rc = edit_json_del_items(doc, path, hook_kind, s->hook.p,
			    orig ? orig->p : NULL, orig ? orig->len : 0, e);
		else
			rc = edit_json_add_item(doc, path, item.p, hook_kind,
			    s->hook.p, e);
	}
	buf_free(&item);
	return rc;
}

static int
mcp_json(struct setup *s, struct buf *doc, const struct buf *orig,
    const char *type, struct err *e)
{
	const char *path[] = { "mcpServers", "backchannel", NULL };
	struct buf v = BUF_INIT;
	int rc;

	if (s->remove)
		return edit_json_del(doc, path, orig ? orig->p : NULL,
		    orig ? orig->len : 0, e);
	buf_addc(&v, '{');
	if (type)
		buf_printf(&v, "\"type\":\"%s\",", type);
	buf_adds(&v, "\"command\":");
	json_put_string(&v, s->bch, strlen(s->bch));
	buf_adds(&v, ",\"args\":[\"mcp\"]}");
	rc = edit_json_set(doc, path, v.p, e);
	buf_free(&v);
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
	const char *vals[] = { NULL, "[\"mcp\"]", NULL };
	struct buf cmd = BUF_INIT;
	int rc;

	(void)orig;
	if (s->remove)
		return edit_toml_del(doc, table, keys, e);
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
	(void)orig;
	if (s->remove)
		return edit_md_del(doc, BEGIN, END, e);
	return edit_md_set(doc, BEGIN, END, s->section.p, e);
}
