/* config-impl.h: what config.c and config-token.c share, apart from
 * the programs. */
#ifndef BCH_CONFIG_IMPL_H
#define BCH_CONFIG_IMPL_H

#include "config.h"

/* Where tokens/<agent> was issued: the url (NULL if not recorded) and
 * the pin (NULL for none); *known is 0 when the file names no pin line. */
struct origin {
	char *url, *pin;
	int known;
};

/* The origin of tokens/<agent>, from tokens/.relay/<agent>. */
void token_origin(const struct config *c, const char *agent,
    struct origin *o);

/* Before config.json names agent: the token of the default identity it
 * names now, if config.json alone holds it, kept in tokens/<old>. */
int config_keep_old_token(const struct config *c, const char *agent,
    struct err *e);

#endif
