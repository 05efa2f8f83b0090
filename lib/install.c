/* install: find the running program's directory, and the programs and
 * files beside it, without a shell and without trusting the current
 * directory (a relative PATH entry is never used). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install.h"
#include "proc.h"

static int
dirname_of(const char *path, char *out, size_t outsz)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return -1;
	if (slash == path)
		slash++;
	if ((size_t)(slash - path) >= outsz)
		return -1;
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = 0;
	return 0;
}

int
install_bindir(const char *argv0, char *out, size_t outsz)
{
	char exe[PATH_MAX], real[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

	if (n > 0) {
		exe[n] = 0;
		return dirname_of(exe, out, outsz);
	}
	if (!argv0 || !*argv0)
		return -1;
	if (strchr(argv0, '/')) {
		if (!realpath(argv0, real))
			return -1;
	} else if (!proc_find(argv0, exe, sizeof exe) || !realpath(exe, real)) {
		return -1;
	}
	return dirname_of(real, out, outsz);
}

int
install_prog(const char *bindir, const char *name, char *out, size_t outsz)
{
	struct stat st;

	if (bindir && snprintf(out, outsz, "%s/%s", bindir, name) < (int)outsz &&
	    stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
		return 1;
	return proc_find(name, out, outsz);
}

int
install_data(const char *bindir, const char *rel, char *out, size_t outsz)
{
	static const char *const where[] = { "..", "../share/backchannel",
		"../share/doc/backchannel" };
	char p[PATH_MAX], real[PATH_MAX];
	size_t k;

	if (!bindir)
		return 0;
	for (k = 0; k < sizeof where / sizeof where[0]; k++) {
		if (snprintf(p, sizeof p, "%s/%s/%s", bindir, where[k], rel) >=
		    (int)sizeof p)
			continue;
		if (realpath(p, real) && strlen(real) < outsz) {
			memcpy(out, real, strlen(real) + 1);
			return 1;
		}
	}
	return 0;
}
