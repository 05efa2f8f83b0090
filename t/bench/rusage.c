/* rusage: run a command N times and print, for each run, its wall time in
 * microseconds (monotonic clock) and its peak resident set size in KiB.
 *
 *   rusage [-n runs] [-i stdin-file] [-o stdout-file] command [arg...]
 *
 * One line per run on standard output: "<wall_us> <maxrss_kib> <cpu_us>",
 * the last being the child's user plus system CPU time, which waiting for
 * a CPU on a loaded machine does not inflate as it does the wall time. The
 * child's standard input and output are the named files, opened afresh
 * for each run (both /dev/null unless given); its standard error is ours.
 * The clock starts just before posix_spawnp() and stops when wait4()
 * returns, so a figure is the full cost of one process: exec, dynamic
 * loading, the work, exit. The peak RSS is that child's own (wait4), not
 * the maximum over every child so far as RUSAGE_CHILDREN would give.
 * A run that exits non-zero or is killed stops everything with status 1:
 * a benchmark must not time an error path.
 *
 * Part of the benchmarks (t/bench/); compiled on the fly by lib.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
usage(void)
{
	fputs("usage: rusage [-n runs] [-i stdin-file] [-o stdout-file] "
	    "command [arg...]\n", stderr);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *in = "/dev/null", *out = "/dev/null";
	posix_spawn_file_actions_t fa;
	long runs = 1, i;
	char *end;
	int ch, rc;

	while ((ch = getopt(argc, argv, "+n:i:o:")) != -1) {
		switch (ch) {
		case 'n':
			errno = 0;
			runs = strtol(optarg, &end, 10);
			if (errno || *end || runs < 1)
				usage();
			break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		default: usage();
		}
	}
	if (optind == argc)
		usage();
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0 ||
	    (rc = posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0)) != 0 ||
	    (rc = posix_spawn_file_actions_addopen(&fa, 1, out,
	    O_WRONLY | O_CREAT | O_TRUNC, 0644)) != 0) {
		fprintf(stderr, "rusage: cannot set up the child: %s\n",
		    strerror(rc));
		return 1;
	}
	for (i = 0; i < runs; i++) {
		struct rusage ru;
		long long t0, t1;
		pid_t pid;
		int status;

		t0 = now_us();
		rc = posix_spawnp(&pid, argv[optind], &fa, NULL, argv + optind,
		    environ);
		if (rc != 0) {
			fprintf(stderr, "rusage: cannot run %s: %s\n", argv[optind],
			    strerror(rc));
			return 1;
		}
		while (wait4(pid, &status, 0, &ru) < 0) {
			if (errno != EINTR) {
				perror("rusage: wait4");
				return 1;
			}
		}
		t1 = now_us();
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (WIFEXITED(status))
				fprintf(stderr, "rusage: %s exited with status %d\n",
				    argv[optind], WEXITSTATUS(status));
			else
				fprintf(stderr, "rusage: %s was killed by signal %d\n",
				    argv[optind], WTERMSIG(status));
			return 1;
		}
		printf("%lld %ld %lld\n", t1 - t0, ru.ru_maxrss,
		    (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
		    ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	}
	posix_spawn_file_actions_destroy(&fa);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		perror("rusage: standard output");
		return 1;
	}
	return 0;
}
