/*
 * Allocation helpers that never return NULL: on failure they log and exit.
 * Use them for small, bounded allocations (config, bookkeeping).  Buffers
 * whose size a peer controls use plain malloc and return MT_ENOMEM instead.
 */
#ifndef MCPTUN_XMALLOC_H
#define MCPTUN_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrites n bytes at p in a way the compiler does not elide. */
void explicit_wipe(void *p, size_t n);
/* Wipes and frees a NUL-terminated secret; NULL is fine. */
void free_secret(char *s);

#endif
