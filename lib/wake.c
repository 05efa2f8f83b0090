/* wake: the wake service as a user service (wake.h): the copy of
 * sv/bch-notify, s6, and which supervisor to use. systemd --user and
 * launchd are in wake-user.c; wake-impl.h is what the two share.
 *
 * Design rationale. There is one pipeline, the run script of
 * sv/bch-notify, and every supervisor runs that script: s6 gets a copy
 * of the service directory in its scan directory (with env/ for
 * s6-envdir), systemd and launchd a copy under ~/.local/share and a unit
 * or agent that runs it with the same variables. A copy, not a link,
 * because the supervisor writes its state into the directory and an
 * installed copy may be read-only. The copy appears by a rename from a
 * dot-name that s6-svscan ignores, so it never scans half a directory.
 * Every file we install carries or sits beside the marker
 * ".bch-setup", and remove touches nothing without it. Supervisor tools
 * run with an argv array through proc_run, bounded in time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "edit.h"
#include "io.h"
#include "proc.h"
#include "wake-impl.h"
#include "wake.h"

#define MARKER ".bch-setup"
#define MARKER_TEXT "installed by bch-setup --wake; bch-setup --remove " \
	"takes it out\n"
#define TOOL_MS 30000

/* Files of sv/bch-notify that make the service; the rest (supervise/,
 * log/main/, env/) is state or is ours to write. */
static const char *const svfiles[] = { "run", "finish", "notification-fd",
	"log/run", "log/finish", "log/notification-fd" };

static int
is_dir(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int
wake_exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

int
wake_ours(const char *dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/" MARKER, dir);
	return is_dir(dir) && wake_exists(p);
}

static int
rmtree_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (fd < 0)
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    rmtree_at(dirfd(d), de->d_name) < 0)
			rc = -1;
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

int
wake_rmtree(const char *path)
{
	return rmtree_at(AT_FDCWD, path);
}

int
wake_put(const char *path, const char *p, size_t n, mode_t mode, int dry,
    int *changed, struct err *e)
{
	struct buf old = BUF_INIT;
	struct stat st;
	int same = io_readfile(AT_FDCWD, path, 1 << 20, &old) == 0 &&
	    old.len == n && (n == 0 || memcmp(old.p, p, n) == 0) &&
	    stat(path, &st) == 0 && (st.st_mode & 07777) == mode;

	buf_free(&old);
	if (same)
		return 0;
	*changed = 1;
	if (dry)
		return 0;
	/* Run as root on a user's HOME or scan directory, a file of
	 * root's there would be one the user cannot change or remove. */
	return edit_write(path, p, n, mode, e);
}

static void
path_value(const struct wake *w, struct buf *b)
{
	const char *path = getenv("PATH");
	size_t n = strlen(w->bindir);
	const char *p;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL)
		if (strncmp(p, w->bindir, n) == 0 && (p[n] == ':' || !p[n])) {
			buf_adds(b, path);
			return;
		}
	buf_printf(b, "%s:%s", w->bindir, path);
}

size_t
wake_service_env(const struct wake *w, int session,
    char vars[][2][PATH_MAX * 2])
{
	static const char *const names[] = { "HOME", "BACKCHANNEL_HOME",
		"BACKCHANNEL_AGENT", "DISPLAY", "WAYLAND_DISPLAY",
		"DBUS_SESSION_BUS_ADDRESS" };
	struct buf path = BUF_INIT;
	size_t k, n = 0;

	path_value(w, &path);
	if (path.len < sizeof vars[0][1] && !strchr(path.p, '\n')) {
		snprintf(vars[n][0], sizeof vars[n][0], "PATH");
		snprintf(vars[n++][1], sizeof vars[0][1], "%s", path.p);
	}
	buf_free(&path);
	for (k = 0; k < sizeof names / sizeof names[0]; k++) {
		const char *v = getenv(names[k]);
		if (!session && k >= 3)
			break; /* the user manager has the session's own */
		if (!v || !*v || strchr(v, '\n') || strlen(v) >= sizeof vars[0][1])
			continue;
		snprintf(vars[n][0], sizeof vars[n][0], "%s", names[k]);
		snprintf(vars[n++][1], sizeof vars[0][1], "%s", v);
	}
	return n;
}

int
wake_sv_fill(struct wake *w, const char *dir, int with_env, int *changed,
    struct err *e)
{
	char src[PATH_MAX], dst[PATH_MAX], vars[8][2][PATH_MAX * 2];
	struct buf b = BUF_INIT;
	struct stat st;
	size_t k, n;

	for (k = 0; k < sizeof svfiles / sizeof svfiles[0]; k++) {
		snprintf(src, sizeof src, "%s/%s", w->svdir, svfiles[k]);
		if (stat(src, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		buf_reset(&b);
		if (io_readfile(AT_FDCWD, src, 1 << 20, &b) < 0) {
			buf_free(&b);
			return err_sys(e, "cannot read %s", src);
		}
		snprintf(dst, sizeof dst, "%s/%s", dir, svfiles[k]);
		if (strchr(svfiles[k], '/')) {
			char sub[PATH_MAX];
			snprintf(sub, sizeof sub, "%s/log", dir);
			if (!w->dry && io_mkdirs(sub, 0755) < 0) {
				buf_free(&b);
				return err_sys(e, "cannot create %s", sub);
			}
		}
		if (wake_put(dst, b.p ? b.p : "", b.len, st.st_mode & 0755,
		    w->dry, changed, e) < 0) {
			buf_free(&b);
			return -1;
		}
	}
	if (with_env) {
		snprintf(dst, sizeof dst, "%s/env", dir);
		if (!w->dry && io_mkdirs(dst, 0755) < 0) {
			buf_free(&b);
			return err_sys(e, "cannot create %s", dst);
		}
		n = wake_service_env(w, 1, vars);
		for (k = 0; k < n; k++) {
			buf_reset(&b);
			buf_printf(&b, "%s\n", vars[k][1]);
			snprintf(dst, sizeof dst, "%s/env/%s", dir, vars[k][0]);
			if (wake_put(dst, b.p, b.len, 0644, w->dry, changed,
			    e) < 0) {
				buf_free(&b);
				return -1;
			}
		}
	}
	buf_free(&b);
	snprintf(dst, sizeof dst, "%s/" MARKER, dir);
	return wake_put(dst, MARKER_TEXT, sizeof MARKER_TEXT - 1, 0644, w->dry,
	    changed, e);
}

int
wake_tool(struct wake *w, const char *name, const char *a1, const char *a2,
    const char *a3, const char *a4, struct err *e)
{
	char path[PATH_MAX];
	char *argv[6] = { (char *)name, (char *)a1, (char *)a2, (char *)a3,
		(char *)a4, NULL };

	w->said[0] = 0;
	if (!proc_find(name, path, sizeof path))
		return -2;
	return proc_run_caught(path, argv, TOOL_MS, w->said, sizeof w->said,
	    e);
}

/* Why a tool that wake_tool returned rc for did not do its part, as
 * " (reason)" to follow setup's own words: not installed, or what
 * proc_run said (it could not start, was killed, took too long); ""
 * for an exit status, which what it said explains. */
static const char *
tool_why(int rc, const char *name, const struct err *e, char *out,
    size_t outsz)
{
	if (rc == -2)
		snprintf(out, outsz, " (%s is not installed)", name);
	else if (rc < 0)
		snprintf(out, outsz, " (%s)", e->msg);
	else
		out[0] = 0;
	return out;
}

void
wake_said(const struct wake *w)
{
	if (w->said[0])
		fprintf(stderr, "bch-setup: it said: %s\n", w->said);
}

static void
nap(void)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* An s6-svscan of this user that runs: its scan directory. */
static int
find_svscan(char *out, size_t sz)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char p[300], comm[64] = "";
		struct stat st;
		ssize_t n;
		FILE *f;
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof p, "/proc/%s", de->d_name);
		if (stat(p, &st) < 0 || st.st_uid != getuid())
			continue;
		snprintf(p, sizeof p, "/proc/%s/comm", de->d_name);
		if (!(f = fopen(p, "re")))
			continue;
		if (!fgets(comm, sizeof comm, f))
			comm[0] = 0;
		fclose(f);
		if (strcmp(comm, "s6-svscan\n") != 0)
			continue;
		/* s6-svscan runs in its scan directory. */
		snprintf(p, sizeof p, "/proc/%s/cwd", de->d_name);
		n = readlink(p, out, sz - 1);
		if (n > 0) {
			out[n] = 0;
			found = 1;
		}
	}
	closedir(d);
	return found;
}

const char *
wake_detect(const struct wake *w, char *scandir, size_t sz)
{
	const char *v = getenv("BCH_S6_SCANDIR");
	struct utsname u;

	scandir[0] = 0;
	if (w->kind && strcmp(w->kind, "s6") != 0)
		return w->kind;
	if (v && *v) {
		snprintf(scandir, sz, "%s", v);
		return "s6";
	}
	if (find_svscan(scandir, sz))
		return "s6";
	if (w->kind)
		return w->kind; /* s6 asked for, none found: the caller says so */
	if (uname(&u) == 0 && strcmp(u.sysname, "Darwin") == 0)
		return "launchd";
	return "systemd";
}

/* Bring the installed service at target up to date, and restart it
 * if anything changed. */
static int
s6_update(struct wake *w, const char *scandir, const char *target,
    struct err *e)
{
	char why[sizeof e->msg + 64];
	int changed = 0, rc;

	if (wake_sv_fill(w, target, 1, &changed, e) < 0)
		return -1;
	if (!changed) {
		buf_printf(w->out, "wake: the s6 service %s is already "
		    "installed\n", target);
		return 0;
	}
	rc = w->dry ? 0 : wake_tool(w, "s6-svc", "-r", target, NULL, NULL, e);
	buf_printf(w->out, "wake: %s the s6 service %s\n", w->dry ?
	    "would update" : rc == 0 ? "updated (and restarted)" : "updated",
	    target);
	if (rc != 0) {
		fprintf(stderr, "bch-setup: s6-svc could not restart it%s — "
		    "start s6-svscan %s, or run s6-svc -r %s\n",
		    tool_why(rc, "s6-svc", e, why, sizeof why), scandir, target);
		wake_said(w);
		w->warned = 1;
	}
	return 0;
}

static int
s6_install(struct wake *w, const char *scandir, struct err *e)
{
	char target[PATH_MAX], tmp[PATH_MAX], why[sizeof e->msg + 64];
	int changed = 0, rc;

	if (!is_dir(scandir))
		return err_set(e, BCH_PERM, "the s6 scan directory %s does not "
		    "exist — create it, or fix BCH_S6_SCANDIR", scandir);
	snprintf(target, sizeof target, "%s/bch-notify", scandir);
	if (wake_exists(target) && !wake_ours(target))
		return err_set(e, BCH_PERM, "%s exists and bch-setup did not "
		    "install it — leaving it alone; remove it to let setup "
		    "install the service", target);
	if (wake_exists(target))
		return s6_update(w, scandir, target, e);
	if (w->dry) {
		buf_printf(w->out, "wake: would install the s6 service %s "
		    "(bch-watch --urgent-only --peek | bch-notify)\n", target);
		return 0;
	}
	snprintf(tmp, sizeof tmp, "%s/.bch-notify.setup.%ld", scandir,
	    (long)getpid());
	wake_rmtree(tmp);
	if (mkdir(tmp, 0755) < 0) { /* never one found there */
		/* Not BACKCHANNEL_HOME's permissions, as err_sys would say:
		 * setup runs as the user whose HOME it is, and the service
		 * runs as them, under a scan directory of theirs. */
		if (errno == EACCES || errno == EPERM || errno == EROFS)
			return err_set(e, BCH_PERM, "cannot install the s6 "
			    "service in the scan directory %s: %s — the service "
			    "runs as you: set BCH_S6_SCANDIR to a scan "
			    "directory of yours", scandir, strerror(errno));
		return err_sys(e, "cannot create %s", tmp);
	}
	if (wake_sv_fill(w, tmp, 1, &changed, e) < 0) {
		wake_rmtree(tmp);
		return -1;
	}
	if (rename(tmp, target) < 0) {
		err_sys(e, "cannot install %s", target);
		wake_rmtree(tmp);
		return -1;
	}
	rc = wake_tool(w, "s6-svscanctl", "-a", scandir, NULL, NULL, e);
	buf_printf(w->out, "wake: installed the s6 service %s "
	    "(bch-watch --urgent-only --peek | bch-notify)%s\n", target,
	    rc == 0 ? "; s6-svscan is starting it" : "");
	if (rc != 0) {
		fprintf(stderr, "bch-setup: no s6-svscan answered on %s%s — "
		    "start one (s6-svscan %s) to run the service\n", scandir,
		    tool_why(rc, "s6-svscanctl", e, why, sizeof why), scandir);
		wake_said(w);
		w->warned = 1;
	}
	return 0;
}

static int
s6_remove(struct wake *w, const char *scandir, struct err *e)
{
	char target[PATH_MAX], gone[PATH_MAX], log[PATH_MAX];
	int tries, scanned;

	snprintf(target, sizeof target, "%s/bch-notify", scandir);
	if (!wake_ours(target))
		return 0;
	if (w->dry) {
		buf_printf(w->out, "wake: would remove the s6 service %s\n",
		    target);
		return 0;
	}
	/* As s6 has it: bring the service down, take its directory out of
	 * the scan directory, have s6-svscan stop its supervisors (and the
	 * logger's), and delete it once they are gone. */
	{
		char *down[] = { "s6-svc", "-wD", "-T", "5000", "-d", target,
			NULL };
		char path[PATH_MAX];
		if (proc_find("s6-svc", path, sizeof path))
			proc_run_caught(path, down, TOOL_MS, w->said,
			    sizeof w->said, e);
	}
	snprintf(gone, sizeof gone, "%s/.bch-notify.removed.%ld", scandir,
	    (long)getpid());
	if (rename(target, gone) < 0)
		return err_sys(e, "cannot remove %s", target);
	scanned = wake_tool(w, "s6-svscanctl", "-aN", scandir, NULL, NULL,
	    e) == 0;
	snprintf(log, sizeof log, "%s/log", gone);
	for (tries = 0; tries < 100; tries++) {
		if (wake_tool(w, "s6-svok", gone, NULL, NULL, NULL, e) != 0 &&
		    (!is_dir(log) || wake_tool(w, "s6-svok", log, NULL, NULL, NULL,
		    e) != 0))
			break;
		nap();
	}
	for (tries = 0; wake_rmtree(gone) < 0 && tries < 40; tries++)
		nap();
	if (scanned)
		buf_printf(w->out, "wake: removed the s6 service %s\n", target);
	else
		buf_printf(w->out, "wake: removed the s6 service directory %s; "
		    "no s6-svscan answered on %s, so there was nothing to "
		    "stop\n", target, scandir);
	if (wake_exists(gone)) {
		fprintf(stderr, "bch-setup: could not delete %s yet — delete "
		    "it by hand\n", gone);
		w->warned = 1;
	}
	return 0;
}


int
wake_install(struct wake *w, struct err *e)
{
	char scandir[PATH_MAX];
	const char *kind = wake_detect(w, scandir, sizeof scandir);

	if (!w->svdir)
		return err_set(e, BCH_PERM, "cannot find the service directory "
		    "sv/bch-notify beside bch — pass --sv DIR");
	if (strcmp(kind, "s6") == 0) {
		if (!scandir[0])
			return err_set(e, BCH_PERM, "no s6-svscan runs for you — "
			    "start one, or set BCH_S6_SCANDIR to its directory");
		return s6_install(w, scandir, e);
	}
	if (strcmp(kind, "systemd") == 0 || strcmp(kind, "launchd") == 0)
		return wake_user_install(w, strcmp(kind, "launchd") == 0, e);
	return err_set(e, BCH_PERM, "unknown service kind %s — use s6, "
	    "systemd or launchd", kind);
}

int
wake_remove(struct wake *w, struct err *e)
{
	char scandir[PATH_MAX];
	const char *v = getenv("BCH_S6_SCANDIR");

	if (v && *v) {
		if (s6_remove(w, v, e) < 0)
			return -1;
	} else if (find_svscan(scandir, sizeof scandir) &&
	    s6_remove(w, scandir, e) < 0) {
		return -1;
	}
	if (wake_user_remove(w, 0, e) < 0)
		return -1;
	return wake_user_remove(w, 1, e);
}
