/* config: where the spool is, who this process is, and the limits. */
#ifndef BCH_CONFIG_H
#define BCH_CONFIG_H

#include <limits.h>
#include <stddef.h>

#include "err.h"
#include "msg.h"

struct config {
	char home[PATH_MAX];                 /* BACKCHANNEL_HOME or ~/.backchannel */
	char agent[NAME_MAX_LEN + 1];        /* this process's identity, or "" */
	char file_agent[NAME_MAX_LEN + 1];   /* config.json's agent, or "" */
	int agent_from_env;                  /* BACKCHANNEL_AGENT was set */
	char *url;                           /* relay, or NULL for the local spool */
	char *token;                         /* personal token for the relay */
	char *chosen; /* token to register under (the caller's), or NULL */
	char *file_url;                      /* config.json's url */
	char *file_token;                    /* config.json's token */
	char *file_pin;                      /* config.json's pin */
	char *file_ca;                       /* config.json's ca */
	/* config.json's members not named above, as written, each as
	 * ",\n  key: value", in their order; NULL for none */
	char *file_extra;
	char *pin;    /* sha256 of the relay's public key, hex (BACKCHANNEL_PIN) */
	char *cafile; /* CA bundle for the relay (BACKCHANNEL_CA) */
	int fsync;                           /* BACKCHANNEL_FSYNC, default 1 */
	struct limits lim;  /* what this process writes */
	struct limits rlim; /* what it accepts from a spool or relay */
	size_t max_inbox;                    /* BACKCHANNEL_MAX_INBOX messages */
	int timeout; /* BACKCHANNEL_TIMEOUT: seconds a relay has to answer */
	int retries; /* times a request that may pass is tried again (3) */
};

/* Read the environment and config.json (a missing file is fine; a broken
 * one is an error). 0, or -1 with e filled and nothing left allocated. */
int config_load(struct config *c, struct err *e);

/* config_load, but a config.json that is not JSON is renamed to
 * config.json.bad (with a line on stderr) and the rest loaded: for
 * bch init, which writes a new one. */
int config_load_repair(struct config *c, const char *prog, struct err *e);

/* The seconds a relay has to answer a request, by default; and
 * BACKCHANNEL_TIMEOUT's value v as seconds (1 to 3600), or -1. */
#define CONFIG_TIMEOUT 15
int config_parse_timeout(const char *v);

/* -1 with a helpful e unless an identity is configured. */
int config_need_agent(const struct config *c, struct err *e);

/* Write config.json with agent, url, token and pin (NULL to omit), 0600;
 * then the members of the file read that this version does not know,
 * unchanged (a newer version's, another implementation's, the user's). */
int config_save(const struct config *c, const char *agent, const char *url,
    const char *token, const char *pin, struct err *e);

/* Do the relay urls a and b name one relay, however written (a host's
 * case, a trailing '/', the scheme's own port)? 1 or 0. */
int config_same_relay(const char *a, const char *b);

/* The personal token kept for agent in tokens/<agent>, or NULL. */
char *config_agent_token(const struct config *c, const char *agent);

/* The personal token kept for agent on the relay at url, into *token
 * (NULL when there is none): tokens/<agent> when it was saved for that
 * url, else config.json's token when agent and url are config.json's.
 * A token is a password for one relay, trusted as it was when the token
 * was issued: -1 with e (BCH_PERM, one line) when the one kept was kept
 * under another key pin than pin (NULL: none), or when agent has a token
 * kept for another relay (registering here would replace it), and
 * nothing is handed. */
int config_token_check(const struct config *c, const char *agent,
    const char *url, const char *pin, char **token, struct err *e);

/* Keep agent's personal token in tokens/<agent>, 0600, and beside it
 * the relay url it is for and the key pin (NULL: none) that relay was
 * trusted by; url NULL: no relay. */
int config_save_token(const struct config *c, const char *agent,
    const char *token, const char *url, const char *pin, struct err *e);

/* A new personal token for agent, kept as config_save_token() keeps
 * one, before any relay hears of it: a registration that follows
 * offers it (config.chosen), so that a save that fails sends nothing
 * and a retry offers the same token. The token, or NULL with e filled
 * and nothing kept. */
char *config_choose_token(const struct config *c, const char *agent,
    const char *url, const char *pin, struct err *e);

/* Remove tokens/<agent> and the relay it names: a token a registration
 * was refused under. 0, or -1 with e filled. */
int config_forget_token(const struct config *c, const char *agent,
    struct err *e);

void config_free(struct config *c);

#endif
