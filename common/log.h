/*
 * Logging: one line per event on stderr, "TIME LEVEL [tag] message".
 * log_warn appends strerror(errno); log_warnx does not (as in relayd).
 * fatal/fatalx log and exit(1): only at start-up or for impossible states.
 * Never pass a secret (token, password, header value) to these functions.
 */
#ifndef MCPTUN_LOG_H
#define MCPTUN_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the program tag ("relay", "client") and the most verbose level shown. */
void log_init(const char *tag, enum log_level level);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
