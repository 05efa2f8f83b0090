/* doctor-wake: bch-doctor's look at the wake service — s6, a systemd
 * user unit or a launchd agent — and whether it runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doctor.h"
#include "proc.h"
#include "wake.h"

#define LABEL "org.backchannel.notify"

static int
tool(const char *name, char *const argv[], char *out, size_t outsz)
{
	char path[PATH_MAX];

	if (!proc_find(name, path, sizeof path))
		return -2;
	return doctor_run(path, argv, out, outsz);
}

/* The s6 service, where a scan directory is found: 1 if it is there. */
static int
wake_s6(struct doc *d, const char *home)
{
	char scandir[PATH_MAX], sv[PATH_MAX + 16], out[300], fix[P + 64],
	    qp[P];
	char *argv[] = { "s6-svstat", sv, NULL };
	struct wake w;
	struct stat st;
	int rc;

	memset(&w, 0, sizeof w);
	w.home = home;
	if (strcmp(wake_detect(&w, scandir, sizeof scandir), "s6") != 0 ||
	    !scandir[0])
		return 0;
	snprintf(sv, sizeof sv, "%s/bch-notify", scandir);
	if (stat(sv, &st) < 0)
		return 0;
	rc = tool("s6-svstat", argv, out, sizeof out);
	snprintf(fix, sizeof fix, "s6-svc -u %s", q(sv, qp, sizeof qp));
	if (rc == 0 && strncmp(out, "up", 2) == 0)
		add(d, OK, "wake service (s6)", NULL, "%s: %s", sv, out);
	else if (rc == -2)
		add(d, FAIL, "wake service (s6)", "apt-get install s6",
		    "%s: s6-svstat is not installed", sv);
	else if (rc == 0)
		add(d, FAIL, "wake service (s6)", fix, "%s: %s", sv, out);
	else {
		snprintf(fix, sizeof fix, "s6-svscanctl -a %s",
		    q(scandir, qp, sizeof qp));
		add(d, FAIL, "wake service (s6)", fix, "%s: not supervised: %s",
		    sv, out);
	}
	return 1;
}

/* The systemd user unit, where installed: 1 if it is there. */
static int
wake_systemd(struct doc *d, const char *home)
{
	const char *x = getenv("XDG_CONFIG_HOME");
	char *argv[] = { "systemctl", "--user", "is-active",
		"bch-notify.service", NULL };
	char unit[P], out[300];
	struct stat st;
	int rc;

	if (x && *x == '/')
		snprintf(unit, sizeof unit, "%s/systemd/user/"
		    "bch-notify.service", x);
	else
		snprintf(unit, sizeof unit, "%s/.config/systemd/user/"
		    "bch-notify.service", home);
	if (stat(unit, &st) < 0)
		return 0;
	rc = tool("systemctl", argv, out, sizeof out);
	if (rc == 0)
		add(d, OK, "wake service (systemd)", NULL, "%s: active", unit);
	else
		add(d, FAIL, "wake service (systemd)", "systemctl --user enable "
		    "--now bch-notify.service", "%s: %s", unit, rc == -2 ?
		    "systemctl is not installed" : *out ? out : "not active");
	return 1;
}

/* The launchd agent, where installed: 1 if it is there. */
static int
wake_launchd(struct doc *d, const char *home)
{
	char *argv[] = { "launchctl", "list", LABEL, NULL };
	char plist[P], out[300], fix[P + 64], qp[P];
	struct stat st;
	int rc;

	snprintf(plist, sizeof plist, "%s/Library/LaunchAgents/" LABEL
	    ".plist", home);
	if (stat(plist, &st) < 0)
		return 0;
	rc = tool("launchctl", argv, out, sizeof out);
	snprintf(fix, sizeof fix, "launchctl load -w %s",
	    q(plist, qp, sizeof qp));
	if (rc == 0)
		add(d, OK, "wake service (launchd)", NULL, "%s: loaded", plist);
	else
		add(d, FAIL, "wake service (launchd)", fix, "%s: %s", plist,
		    rc == -2 ? "launchctl is not installed" : "not loaded");
	return 1;
}

void
check_wake(struct doc *d)
{
	const char *home = getenv("HOME");
	char p[PATH_MAX];
	int any;

	any = wake_s6(d, home);
	if (home && *home == '/') {
		any |= wake_systemd(d, home);
		any |= wake_launchd(d, home);
	}
	if (!any)
		add(d, WARN, "wake service", NULL, "not installed — bch setup "
		    "--wake installs it, for desktop notifications of urgent "
		    "messages");
	if (proc_find("notify-send", p, sizeof p) ||
	    proc_find("osascript", p, sizeof p))
		add(d, OK, "notifier", NULL, "%s", p);
	else if (any)
		add(d, FAIL, "notifier", "apt-get install libnotify-bin",
		    "neither notify-send nor osascript is on PATH: urgent "
		    "messages only ring a bell");
	else
		add(d, WARN, "notifier", NULL, "neither notify-send nor "
		    "osascript is on PATH");
}
