/* wake-user: the wake service under systemd --user or launchd: a copy
 * of sv/bch-notify under ~/.local/share and a unit (or agent) file that
 * runs it with the variables s6 would get from env/ (see wake.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edit.h"
#include "io.h"
#include "wake-impl.h"
#include "wake.h"

#define UNIT_MARK "# Installed by bch-setup --wake"
#define PLIST_MARK "<!-- Installed by bch-setup: the backchannel wake " \
	"service. -->"
#define LABEL "org.backchannel.notify"

/* ~/.local/share/backchannel/sv/bch-notify (XDG_DATA_HOME honoured). */
static void
copy_dir(const struct wake *w, char *out, size_t sz, int level)
{
	const char *x = getenv("XDG_DATA_HOME");
	static const char *const tail[] = { "/backchannel/sv/bch-notify",
		"/backchannel/sv", "/backchannel" };

	if (x && *x == '/')
		snprintf(out, sz, "%s%s", x, tail[level]);
	else
		snprintf(out, sz, "%s/.local/share%s", w->home, tail[level]);
}

static void
unit_path(const struct wake *w, char *out, size_t sz)
{
	const char *x = getenv("XDG_CONFIG_HOME");

	if (x && *x == '/')
		snprintf(out, sz, "%s/systemd/user/bch-notify.service", x);
	else
		snprintf(out, sz, "%s/.config/systemd/user/bch-notify.service",
		    w->home);
}

/* A value for a unit file, % doubled, in double quotes where the
 * setting takes them (WorkingDirectory= does not). -1 if unusable. */
static int
unit_quote(struct buf *b, const char *s, int quote)
{
	if (strpbrk(s, "\"\\\n"))
		return -1;
	if (quote)
		buf_addc(b, '"');
	for (; *s; s++)
		buf_adds(b, *s == '%' ? "%%" : (char[]){ *s, 0 });
	if (quote)
		buf_addc(b, '"');
	return 0;
}

static int
unit_text(struct wake *w, const char *dir, struct buf *u, struct err *e)
{
	char vars[8][2][PATH_MAX * 2], kv[PATH_MAX * 4 + 2], run[PATH_MAX];
	size_t k, n = wake_service_env(w, 0, vars);
	int bad = 0;

	snprintf(run, sizeof run, "%s/run", dir);
	buf_adds(u, "# bch-notify: urgent backchannel messages as desktop "
	    "notifications,\n# bch-watch --urgent-only | bch-notify (the run "
	    "script of sv/bch-notify).\n" UNIT_MARK "; bch-setup --remove "
	    "takes it out.\n[Unit]\nDescription=backchannel wake service: "
	    "urgent messages as desktop notifications\n\n[Service]\n"
	    "WorkingDirectory=");
	bad |= unit_quote(u, dir, 0);
	buf_adds(u, "\nExecStart=");
	bad |= unit_quote(u, run, 1);
	buf_addc(u, '\n');
	for (k = 0; k < n; k++) {
		if (strcmp(vars[k][0], "HOME") == 0)
			continue; /* the user manager sets it */
		snprintf(kv, sizeof kv, "%s=%s", vars[k][0], vars[k][1]);
		buf_adds(u, "Environment=");
		bad |= unit_quote(u, kv, 1);
		buf_addc(u, '\n');
	}
	buf_adds(u, "Restart=always\nRestartSec=5\n\n[Install]\n"
	    "WantedBy=default.target\n");
	if (bad)
		return err_set(e, BCH_PERM, "a path or variable holds a quote, "
		    "a backslash or a line break — cannot write it into a "
		    "systemd unit");
	return 0;
}

static void
xml_text(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			buf_adds(b, "&amp;");
		else if (*s == '<')
			buf_adds(b, "&lt;");
		else if (*s == '>')
			buf_adds(b, "&gt;");
		else
			buf_addc(b, *s);
	}
}

static void
plist_text(struct wake *w, const char *dir, struct buf *p)
{
	char vars[8][2][PATH_MAX * 2];
	size_t k, n = wake_service_env(w, 0, vars);

	buf_adds(p, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE "
	    "plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n" PLIST_MARK
	    "\n<plist version=\"1.0\">\n<dict>\n\t<key>Label</key>\n"
	    "\t<string>" LABEL "</string>\n\t<key>ProgramArguments</key>\n"
	    "\t<array>\n\t\t<string>");
	xml_text(p, dir);
	buf_adds(p, "/run</string>\n\t</array>\n\t<key>WorkingDirectory</key>"
	    "\n\t<string>");
	xml_text(p, dir);
	buf_adds(p, "</string>\n\t<key>EnvironmentVariables</key>\n\t<dict>\n");
	for (k = 0; k < n; k++) {
		buf_adds(p, "\t\t<key>");
		xml_text(p, vars[k][0]);
		buf_adds(p, "</key>\n\t\t<string>");
		xml_text(p, vars[k][1]);
		buf_adds(p, "</string>\n");
	}
	buf_adds(p, "\t</dict>\n\t<key>RunAtLoad</key>\n\t<true/>\n"
	    "\t<key>KeepAlive</key>\n\t<true/>\n</dict>\n</plist>\n");
}

/* The file at path holds mark (it is ours), or does not exist. */
static int
file_ours(const char *path, const char *mark)
{
	struct buf b = BUF_INIT;
	int r;

	if (io_readfile(AT_FDCWD, path, 1 << 20, &b) < 0) {
		buf_free(&b);
		return errno == ENOENT ? 1 : 0;
	}
	r = b.p && strstr(b.p, mark) != NULL;
	buf_free(&b);
	return r;
}

/* Where the service goes: dir, the copy of the service directory, and
 * file, the unit (or agent) that runs it; both PATH_MAX bytes. */
static void
user_paths(const struct wake *w, int launchd, char *dir, char *file)
{
	copy_dir(w, dir, PATH_MAX, 0);
	if (launchd)
		snprintf(file, PATH_MAX, "%s/Library/LaunchAgents/" LABEL
		    ".plist", w->home);
	else
		unit_path(w, file, PATH_MAX);
}

/* Write the unit (or agent) file that runs the copy in dir, and the
 * directory it goes in; *changed is set unless it was so already. */
static int
user_write(struct wake *w, int launchd, const char *dir, const char *file,
    int *changed, struct err *e)
{
	char parent[PATH_MAX];
	struct buf text = BUF_INIT;
	int rc;

	if (launchd)
		plist_text(w, dir, &text);
	else if (unit_text(w, dir, &text, e) < 0) {
		buf_free(&text);
		return -1;
	}
	snprintf(parent, sizeof parent, "%s", file);
	*strrchr(parent, '/') = 0;
	if (!w->dry && io_mkdirs(parent, 0755) < 0) {
		buf_free(&text);
		return err_sys(e, "cannot create %s", parent);
	}
	rc = wake_put(file, text.p, text.len, 0644, w->dry, changed, e);
	buf_free(&text);
	return rc < 0 ? -1 : 0;
}

/* Have the supervisor load file and start the service. One that is
 * missing or fails is said, with the command to start it by hand; the
 * files stay installed either way. */
static void
user_start(struct wake *w, int launchd, const char *what, const char *file,
    struct err *e)
{
	int rc;

	if (launchd) {
		wake_tool(w, "launchctl", "unload", file, NULL, NULL, e);
		rc = wake_tool(w, "launchctl", "load", "-w", file, NULL, e);
	} else {
		rc = wake_tool(w, "systemctl", "--user", "daemon-reload", NULL,
		    NULL, e);
		if (rc == 0)
			rc = wake_tool(w, "systemctl", "--user", "enable", "--now",
			    "bch-notify.service", e);
	}
	buf_printf(w->out, "wake: installed the %s %s%s\n", what, file,
	    rc == 0 ? " and started it" : "");
	if (rc == -2) {
		buf_printf(w->out, "wake: %s is not installed — start the "
		    "service with: %s\n", launchd ? "launchctl" : "systemctl",
		    launchd ? "launchctl load -w " LABEL ".plist" :
		    "systemctl --user enable --now bch-notify.service");
	} else if (rc != 0) {
		fprintf(stderr, "bch-setup: %s did not start the service (%s) "
		    "— start it yourself: %s\n", launchd ? "launchctl" :
		    "systemctl", rc < 0 ? e->msg : "it failed",
		    launchd ? "launchctl load -w ~/Library/LaunchAgents/" LABEL
		    ".plist" : "systemctl --user enable --now bch-notify.service");
		wake_said(w);
		w->warned = 1;
	}
}

int
wake_user_install(struct wake *w, int launchd, struct err *e)
{
	char dir[PATH_MAX], file[PATH_MAX];
	const char *what = launchd ? "launchd agent" : "systemd --user unit";
	int changed = 0;

	user_paths(w, launchd, dir, file);
	if (!file_ours(file, launchd ? PLIST_MARK : UNIT_MARK))
		return err_set(e, BCH_PERM, "%s exists and bch-setup did not "
		    "write it — leaving it alone", file);
	if (wake_exists(dir) && !wake_ours(dir))
		return err_set(e, BCH_PERM, "%s exists and bch-setup did not "
		    "install it — leaving it alone", dir);
	if (!w->dry && io_mkdirs(dir, 0755) < 0)
		return err_sys(e, "cannot create %s", dir);
	if (wake_sv_fill(w, dir, 0, &changed, e) < 0 ||
	    user_write(w, launchd, dir, file, &changed, e) < 0)
		return -1;
	if (!changed) {
		buf_printf(w->out, "wake: the %s %s is already installed\n",
		    what, file);
		return 0;
	}
	if (w->dry) {
		buf_printf(w->out, "wake: would install the %s %s and start "
		    "it\n", what, file);
		return 0;
	}
	user_start(w, launchd, what, file, e);
	return 0;
}

int
wake_user_remove(struct wake *w, int launchd, struct err *e)
{
	char dir[PATH_MAX], file[PATH_MAX];
	const char *what = launchd ? "launchd agent" : "systemd --user unit";
	int k;

	user_paths(w, launchd, dir, file);
	if (wake_exists(file) &&
	    file_ours(file, launchd ? PLIST_MARK : UNIT_MARK)) {
		if (w->dry) {
			buf_printf(w->out, "wake: would stop and remove the %s "
			    "%s\n", what, file);
		} else {
			if (launchd)
				wake_tool(w, "launchctl", "unload", "-w", file,
				    NULL, e);
			else
				wake_tool(w, "systemctl", "--user", "disable",
				    "--now", "bch-notify.service", e);
			if (unlink(file) < 0)
				return err_sys(e, "cannot remove %s", file);
			if (!launchd)
				wake_tool(w, "systemctl", "--user",
				    "daemon-reload", NULL, NULL, e);
			buf_printf(w->out, "wake: stopped and removed the %s "
			    "%s\n", what, file);
		}
	}
	if (!wake_ours(dir) || w->dry)
		return 0;
	if (wake_rmtree(dir) < 0)
		return err_sys(e, "cannot remove %s", dir);
	for (k = 1; k <= 2; k++) { /* the directories above, if now empty */
		copy_dir(w, dir, sizeof dir, k);
		rmdir(dir);
	}
	return 0;
}
