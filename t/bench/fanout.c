/* fanout: the floor of a channel send's fan-out on this disk, for
 * relay.sh. For each of ROUNDS messages, write one file into the tmp/ of
 * the first inbox named in NAMES, link() it into the new/ of every other
 * one, then rename() it into the first one's new/: what the spool does
 * for a channel of that many subscribers, by absolute path as the spool
 * does, with nothing else around it (no JSON, no agent records, no
 * sockets).
 *
 *   fanout SPOOL NAMES ROUNDS SIZE
 *
 * SPOOL is a spool directory (SPOOL/<name>/{tmp,new} exist); NAMES is a
 * file of "name ..." lines. Every new/ is watched with inotify, as the
 * relay watches the inboxes of its SSE readers, and the events are read
 * between rounds, outside the timing. Prints each round's time in
 * microseconds, one line per round. Names look like message ids.
 *
 * Part of the benchmarks (t/bench/); compiled on the fly by lib.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

static void
die(const char *what, const char *name)
{
	fprintf(stderr, "fanout: %s %s: %s\n", what, name, strerror(errno));
	exit(1);
}

static double
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int
main(int argc, char **argv)
{
	static char ev[1 << 16];
	char line[256], path[4096], dst[4096], id[64], **names = NULL, *data;
	size_t n = 0, cap = 0, i;
	long rounds, size, r;
	FILE *f;
	int ino;

	if (argc != 5 || (rounds = atol(argv[3])) < 1 ||
	    (size = atol(argv[4])) < 1) {
		fputs("usage: fanout SPOOL NAMES ROUNDS SIZE\n", stderr);
		return 2;
	}
	if (!(f = fopen(argv[2], "r")))
		die("cannot open", argv[2]);
	if ((ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		die("cannot use", "inotify");
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, " \n")] = 0;
		if (!line[0])
			continue;
		if (n == cap && !(names = realloc(names,
		    (cap = cap ? cap * 2 : 1024) * sizeof *names)))
			die("cannot allocate", "names");
		if (!(names[n++] = strdup(line)))
			die("cannot allocate", "names");
		snprintf(path, sizeof path, "%s/%s/new", argv[1], line);
		if (inotify_add_watch(ino, path, IN_CREATE | IN_MOVED_TO |
		    IN_ONLYDIR) < 0)
			die("cannot watch", path);
	}
	fclose(f);
	if (n < 2) {
		fputs("fanout: NAMES needs two names or more\n", stderr);
		return 2;
	}
	if (!(data = malloc((size_t)size)))
		die("cannot allocate", "data");
	memset(data, 'x', (size_t)size);
	data[size - 1] = '\n';
	for (r = 0; r < rounds; r++) {
		unsigned long h = (unsigned long)r * 2654435761UL;
		ssize_t w, off = 0;
		double t0;
		int fd;

		snprintf(id, sizeof id, "%08lx-%04lx-4000-8000-%012lx.json",
		    h & 0xffffffffUL, (unsigned long)getpid() & 0xffff,
		    (unsigned long)r);
		t0 = now_us();
		snprintf(path, sizeof path, "%s/%s/tmp/%s", argv[1], names[0], id);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd < 0)
			die("cannot create", path);
		while (off < size) {
			w = write(fd, data + off, (size_t)(size - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("cannot write", path);
			off += w;
		}
		if (close(fd) < 0)
			die("cannot close", path);
		for (i = n; i-- > 1;) {
			snprintf(dst, sizeof dst, "%s/%s/new/%s", argv[1],
			    names[i], id);
			if (link(path, dst) < 0)
				die("cannot link", dst);
		}
		snprintf(dst, sizeof dst, "%s/%s/new/%s", argv[1], names[0], id);
		if (rename(path, dst) < 0)
			die("cannot rename", path);
		printf("%.0f\n", now_us() - t0);
		while (read(ino, ev, sizeof ev) > 0)
			; /* what the relay reads after a send */
	}
	return 0;
}
