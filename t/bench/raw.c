/* raw: the floor that bch-send is measured against. Deliver N files of
 * SIZE bytes into the Maildir DIR the plain way, with nothing else:
 *
 *   raw DIR N SIZE FSYNC
 *
 * For each file: openat(tmp/<name>, O_CREAT|O_EXCL), write SIZE bytes,
 * fsync it when FSYNC is 1, close, renameat() into new/. When FSYNC is 1,
 * new/ itself is fsynced once per 4096 files and at the end, as bch-send
 * batches its directory syncs. Names look like message ids (36
 * characters plus ".json"); paths are relative to open directory
 * descriptors, so no path walk is charged to the baseline. DIR, DIR/tmp
 * and DIR/new are created when missing. It prints nothing.
 *
 * Part of the benchmarks (t/bench/); compiled on the fly by lib.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BATCH 4096

static void
die(const char *what, const char *name)
{
	fprintf(stderr, "raw: %s %s: %s\n", what, name, strerror(errno));
	exit(1);
}

static long
number(const char *s, long min)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || *end || n < min) {
		fputs("usage: raw DIR N SIZE FSYNC(0|1)\n", stderr);
		exit(2);
	}
	return n;
}

static int
opendir_fd(const char *dir, const char *sub)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, sub);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		die("cannot create", path);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		die("cannot open", path);
	return fd;
}

int
main(int argc, char **argv)
{
	char name[64], *data;
	unsigned long pid = (unsigned long)getpid() & 0xffff;
	long n, size, i;
	int sync, tmp, new;

	if (argc != 5)
		number("", 0);
	n = number(argv[2], 1);
	size = number(argv[3], 1);
	sync = (int)number(argv[4], 0);
	if (mkdir(argv[1], 0700) < 0 && errno != EEXIST)
		die("cannot create", argv[1]);
	tmp = opendir_fd(argv[1], "tmp");
	new = opendir_fd(argv[1], "new");
	if (!(data = malloc((size_t)size)))
		die("cannot allocate", "data");
	memset(data, 'x', (size_t)size);
	data[size - 1] = '\n';
	for (i = 0; i < n; i++) {
		unsigned long h = (unsigned long)i * 2654435761UL;
		ssize_t w, off = 0;
		int fd;

		snprintf(name, sizeof name, "%08lx-%04lx-4000-8000-%012lx.json",
		    h & 0xffffffffUL, pid, (unsigned long)i);
		fd = openat(tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd < 0)
			die("cannot create", name);
		while (off < size) {
			w = write(fd, data + off, (size_t)(size - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("cannot write", name);
			off += w;
		}
		if (sync && fsync(fd) < 0)
			die("cannot sync", name);
		if (close(fd) < 0)
			die("cannot close", name);
		if (renameat(tmp, name, new, name) < 0)
			die("cannot rename", name);
		if (sync && (i + 1) % BATCH == 0 && fsync(new) < 0)
			die("cannot sync", "new/");
	}
	if (sync && fsync(new) < 0)
		die("cannot sync", "new/");
	free(data);
	return 0;
}
