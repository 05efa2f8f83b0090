/* scope: PROTOCOL.md 4, normalising scopes and matching readers. */
#ifndef BCH_SCOPE_H
#define BCH_SCOPE_H

#include <stddef.h>

/* Normalise in into out (size at least strlen(in)+1): strip a leading
 * scheme:// (https, ssh, file, ...), a user (through the last '@' before
 * the first '/'), after a scheme a :port after the host, then a leading
 * "www." of the host where a domain name is left; lowercase, turn ':'
 * into '/', strip trailing slashes and a trailing .git. */
void scope_normalize(const char *in, char *out, size_t outsz);

/* May a reader whose match string is match (NULL: none) claim a message
 * with this scope (NULL: none)? A match string holds one or more
 * alternatives, one a line (no remote URL holds a newline); the scope
 * matches when one of them holds it. All are normalised here. */
int scope_match(const char *scope, const char *match);

/* The match string for the directory dir: the origin remote of the git
 * repository it is in (read from .git/config, or from the config of the
 * bare repository or .git directory dir is in; no child process), else
 * that repository's top directory, else dir itself; and after a newline
 * the repository's upstream remote if it has one. Written to out; 0 or
 * -1 if dir is unusable. */
int repo_match(const char *dir, char *out, size_t outsz);

#endif
