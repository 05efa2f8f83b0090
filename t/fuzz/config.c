/* config fuzz target: config_load over a config.json holding the input,
 * in a private BACKCHANNEL_HOME; what loads must save and load back. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "io.h"

#include "check.h"

static char home[PATH_MAX], file[PATH_MAX + 16];

static void
cleanup(void)
{
	unlink(file);
	rmdir(home);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	/* tmpfs when there is one: config_save fsyncs. */
	if (access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	else if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(home, sizeof home, "%s/bch-fuzz-config.XXXXXX", tmp);
	if (!mkdtemp(home)) {
		perror("bch-fuzz-config: mkdtemp");
		exit(1);
	}
	snprintf(file, sizeof file, "%s/config.json", home);
	atexit(cleanup);
	setenv("BACKCHANNEL_HOME", home, 1);
	unsetenv("BACKCHANNEL_AGENT");
	unsetenv("BACKCHANNEL_URL");
	unsetenv("BACKCHANNEL_TOKEN");
	unsetenv("BACKCHANNEL_MAX_BODY");
	unsetenv("BACKCHANNEL_MAX_INBOX");
	unsetenv("BACKCHANNEL_FSYNC");
	unsetenv("BACKCHANNEL_PIN");
	unsetenv("BACKCHANNEL_CA");
	return 0;
}

static int
same_str(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
check_loaded(const struct config *c)
{
	CHECK(strcmp(c->home, home) == 0);
	CHECK(!c->file_agent[0] || name_valid(c->file_agent));
	CHECK(strcmp(c->agent, c->file_agent) == 0 && !c->agent_from_env);
	CHECK(!c->file_url || strlen(c->file_url) <= 4096);
	CHECK(!c->file_token || strlen(c->file_token) <= 4096);
	CHECK(!c->pin || strlen(c->pin) <= 128);
	CHECK(!c->cafile || strlen(c->cafile) <= 4096);
	if (c->file_url && *c->file_url)
		CHECK(c->url && strcmp(c->url, c->file_url) == 0);
	else
		CHECK(!c->url);
	CHECK(same_str(c->token, c->file_token));
}

/* bch init writes what it read, the members it does not know too;
 * reading it again changes nothing. */
static void
check_save(const struct config *c)
{
	struct config d;
	struct err e;

	if (config_save(c, c->file_agent, c->file_url, c->file_token, c->pin,
	    &e) < 0) {
		fprintf(stderr, "config_save: %s\n", e.msg);
		CHECK(0);
	}
	if (config_load(&d, &e) < 0) {
		fprintf(stderr, "config_load after save: %s\n", e.msg);
		CHECK(0);
	}
	CHECK(strcmp(d.file_agent, c->file_agent) == 0);
	CHECK(same_str(d.file_url, c->file_url));
	CHECK(same_str(d.file_token, c->file_token));
	CHECK(same_str(d.pin, c->pin));
	CHECK(same_str(d.file_ca, c->file_ca));
	/* The members it does not know come back as they were. */
	CHECK(same_str(d.file_extra, c->file_extra));
	config_free(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	struct err e;
	int fd;

	memset(&e, 0, sizeof e);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(io_writeall(fd, data, size) == 0);
	CHECK(close(fd) == 0);
	if (config_load(&c, &e) == 0) {
		check_loaded(&c);
		if (c.file_agent[0])
			check_save(&c);
	} else {
		CHECK(e.code == BCH_PERM && e.msg[0]);
	}
	config_free(&c);
	return 0;
}
