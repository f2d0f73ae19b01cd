/*
 * Loads libpq with dlopen() on first use and fills the function table of
 * pq_dl.h; see there for why.  Only the event-loop thread calls this.
 */
#include "client/pq_dl.h"
#include "common/err.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

struct pq_dl libpq;

static void *pq_handle;

static const struct pq_dl_sym {
	const char	*name;
	size_t		 off;
} pq_dl_syms[] = {
#define PQ_DL_SYM(f)	{ #f, offsetof(struct pq_dl, f) },
	PQ_DL_FUNCS(PQ_DL_SYM)
#undef PQ_DL_SYM
};

int
pq_dl_load_from(const char *lib, char *err, size_t errlen)
{
	struct pq_dl t;
	const char *e;
	void *h, *sym;
	size_t i;

	if (pq_handle != NULL)
		return 0;
	dlerror();
	if ((h = dlopen(lib, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(err, errlen, "cannot load %s (is libpq5 "
		    "installed?): %s", lib, e != NULL ? e : "unknown error");
		return MT_ENOTFOUND;
	}
	memset(&t, 0, sizeof(t));
	for (i = 0; i < sizeof(pq_dl_syms) / sizeof(pq_dl_syms[0]); i++) {
		dlerror();
		if ((sym = dlsym(h, pq_dl_syms[i].name)) == NULL) {
			e = dlerror();
			snprintf(err, errlen, "%s has no %s (too old a libpq?)"
			    "%s%s", lib, pq_dl_syms[i].name, e != NULL ?
			    ": " : "", e != NULL ? e : "");
			dlclose(h);
			return MT_ENOTFOUND;
		}
		/* POSIX: a function pointer has an object pointer's form. */
		memcpy((char *)&t + pq_dl_syms[i].off, &sym, sizeof(sym));
	}
	libpq = t;
	pq_handle = h;
	return 0;
}

int
pq_dl_load(char *err, size_t errlen)
{
	return pq_dl_load_from(PQ_DL_LIBNAME, err, errlen);
}

int
pq_dl_loaded(void)
{
	return pq_handle != NULL;
}
