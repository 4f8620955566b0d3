/*
 * main.c - shipgate-sandbox: the shipping providers' documented endpoints on loopback.
 *
 *   shipgate-sandbox [--listen 127.0.0.1:18080] [--token sandbox-token]
 *                    [--biteship-key biteship_test.sandbox] [--delay-ms N] [--max-conns N]
 *                    [--threads N]
 *
 * Prints exactly one line, "listening on http://HOST:PORT", to stdout once it accepts
 * connections (so "--listen 127.0.0.1:0" can be used and the port read back), then serves
 * until SIGINT or SIGTERM. Everything else goes to stderr. See docs/sandbox.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/file.h"
#include "providers.h"
#include "server.h"

#define DEFAULT_LISTEN       "127.0.0.1:18080"
#define DEFAULT_TOKEN        "sandbox-token"
#define DEFAULT_BITESHIP_KEY "biteship_test.sandbox"
#define DEFAULT_MAX_CONNS    16384u /* 10,000 concurrent connections and some room */
#define FD_RESERVE           64u    /* descriptors kept for the listener, logs, epoll, ... */
#define MAX_THREADS          8u

/* ================================================================== arguments */

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: shipgate-sandbox [--listen HOST:PORT] [--token TOKEN]\n"
	        "                        [--biteship-key KEY] [--delay-ms N] [--max-conns N]\n"
	        "                        [--threads N] [--tls-cert FILE --tls-key FILE]\n"
	        "  --listen HOST:PORT   address to listen on (default " DEFAULT_LISTEN
	        "; port 0: any free port;\n"
	        "                       IPv6 as [::1]:PORT)\n"
	        "  --token TOKEN        bearer token for BosCOD, bosOnline and Fuuffy, and the\n"
	        "                       Fuuffy client_secret (default " DEFAULT_TOKEN ")\n"
	        "  --biteship-key KEY   raw Biteship key, biteship_test.* or biteship_live.*\n"
	        "                       (default " DEFAULT_BITESHIP_KEY ")\n"
	        "  --delay-ms N         delay every provider answer by N ms (default 0)\n"
	        "  --max-conns N        concurrent connection cap (default %u, within the\n"
	        "                       open-file limit)\n"
	        "  --threads N          HTTP threads (default: CPUs, at most %u)\n"
	        "  --tls-cert FILE      serve https with this PEM certificate (chain)\n"
	        "  --tls-key FILE       and this PEM private key\n"
	        "Prints \"listening on http://HOST:PORT\" (https with TLS) when ready; stops on\n"
	        "SIGINT/SIGTERM.\n",
	        DEFAULT_MAX_CONNS, MAX_THREADS);
}

/* A PEM file's text (malloc'd; kept for the process's life), or NULL with a message. */
static char *
read_pem(const char *path)
{
	char *buf = sg_read_file(path, 1 << 20);
	if (buf == NULL)
		fprintf(stderr, "shipgate-sandbox: %s: cannot read a PEM file: %s\n", path,
		        strerror(errno));
	return buf;
}

/* Parses a decimal in [lo, hi]. */
static int
parse_uint(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* A credential must be printable ASCII without spaces (it goes into headers verbatim). */
static int
check_credential(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 200)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s <= ' ' || *s > '~')
			return -1;
	}
	return 0;
}

/* "1.2.3.4:80", "localhost:80", "[::1]:80" -> addr. */
static int
parse_listen(const char *s, struct sockaddr_storage *addr)
{
	char host[64];
	const char *colon, *hs;
	size_t hl;
	unsigned long long port;

	memset(addr, 0, sizeof(*addr));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		hs = s + 1;
		hl = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		hs = s;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host) || parse_uint(colon + 1, 0, 65535, &port) != 0)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (s[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;

		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)addr;

		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : -1;
	}
}

/* ================================================================== process set-up */

/* Raises the open-file soft limit to the hard limit. Returns the soft limit now in force. */
static rlim_t
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;

		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/* Fills the key that signs issued Fuuffy tokens (random; a fallback if urandom is absent). */
static void
random_secret(uint64_t secret[2])
{
	int fd = open("/dev/urandom", O_RDONLY);
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, secret, 2 * sizeof(secret[0]));
		close(fd);
	}
	if (n != (ssize_t)(2 * sizeof(secret[0]))) {
		secret[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u;
		secret[1] = (uint64_t)getpid() * 0xc2b2ae3d27d4eb4fu;
	}
}

/* ================================================================== main */

int
main(int argc, char **argv)
{
	const char *listen_at = DEFAULT_LISTEN, *why;
	const char *tls_cert_path = NULL, *tls_key_path = NULL;
	unsigned long long v, max_conns = 0, threads = 0;
	char err[256], host[INET6_ADDRSTRLEN];
	sbx_server_opts o;
	sbx_server *srv;
	sigset_t sigs;
	rlim_t nofile;
	long ncpu;
	int i, sig;

	memset(&o, 0, sizeof(o));
	o.conf.token = DEFAULT_TOKEN;
	o.conf.biteship_key = DEFAULT_BITESHIP_KEY;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const char *eq = strchr(a, '=');
		char name[32];
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (nl >= sizeof(name) || strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "shipgate-sandbox: unknown argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
		memcpy(name, a, nl);
		name[nl] = '\0';
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (val == NULL) {
			fprintf(stderr, "shipgate-sandbox: %s needs a value\n", name);
			return 2;
		}
		if (strcmp(name, "--listen") == 0) {
			listen_at = val;
		} else if (strcmp(name, "--token") == 0) {
			o.conf.token = val;
		} else if (strcmp(name, "--biteship-key") == 0) {
			o.conf.biteship_key = val;
		} else if (strcmp(name, "--delay-ms") == 0) {
			if (parse_uint(val, 0, 3600000, &v) != 0) {
				fprintf(stderr, "shipgate-sandbox: --delay-ms takes 0..3600000\n");
				return 2;
			}
			o.conf.delay_ms = v;
		} else if (strcmp(name, "--max-conns") == 0) {
			if (parse_uint(val, 1, 1000000, &max_conns) != 0) {
				fprintf(stderr, "shipgate-sandbox: --max-conns takes 1..1000000\n");
				return 2;
			}
		} else if (strcmp(name, "--tls-cert") == 0) {
			tls_cert_path = val;
		} else if (strcmp(name, "--tls-key") == 0) {
			tls_key_path = val;
		} else if (strcmp(name, "--threads") == 0) {
			if (parse_uint(val, 1, 64, &threads) != 0) {
				fprintf(stderr, "shipgate-sandbox: --threads takes 1..64\n");
				return 2;
			}
		} else {
			fprintf(stderr, "shipgate-sandbox: unknown option '%s'\n", name);
			usage(stderr);
			return 2;
		}
	}
	if (parse_listen(listen_at, &o.addr) != 0) {
		fprintf(stderr,
		        "shipgate-sandbox: bad --listen '%s' (want IP:PORT or [IPv6]:PORT)\n",
		        listen_at);
		return 2;
	}
	if (check_credential(o.conf.token) != 0) {
		fprintf(stderr, "shipgate-sandbox: --token must be 1..200 printable characters, "
		                "no spaces\n");
		return 2;
	}
	if (check_credential(o.conf.biteship_key) != 0 ||
	    (strncmp(o.conf.biteship_key, "biteship_test.", 14) != 0 &&
	     strncmp(o.conf.biteship_key, "biteship_live.", 14) != 0)) {
		fprintf(stderr, "shipgate-sandbox: --biteship-key must start biteship_test. or "
		                "biteship_live.\n");
		return 2;
	}
	if ((why = sbx_boscod_check()) != NULL || (why = sbx_bosonline_check()) != NULL ||
	    (why = sbx_biteship_check()) != NULL || (why = sbx_fuuffy_check()) != NULL) {
		fprintf(stderr, "shipgate-sandbox: embedded data: %s\n", why);
		return 1;
	}

	/* every connection is a descriptor: ask for as many as we may have */
	nofile = raise_nofile();
	if (max_conns == 0) {
		max_conns = DEFAULT_MAX_CONNS;
		if (nofile != RLIM_INFINITY && nofile < max_conns + FD_RESERVE)
			max_conns = nofile > 2 * FD_RESERVE ? nofile - FD_RESERVE : FD_RESERVE;
		if (max_conns < 10000)
			fprintf(stderr,
			        "shipgate-sandbox: warning: open-file limit %llu allows only %llu "
			        "connections\n",
			        (unsigned long long)nofile, max_conns);
	} else if (nofile != RLIM_INFINITY && max_conns + FD_RESERVE > nofile) {
		fprintf(stderr,
		        "shipgate-sandbox: warning: --max-conns %llu is over the open-file limit "
		        "%llu; connections past it will be refused\n",
		        max_conns, (unsigned long long)nofile);
	}
	o.max_conns = (unsigned)max_conns;
	if (threads == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		threads = ncpu < 1 ? 1 : (unsigned long long)ncpu;
		if (threads > MAX_THREADS)
			threads = MAX_THREADS;
	}
	o.threads = (unsigned)threads;
	random_secret(o.conf.secret);

	/* MHD's threads inherit this mask: the signals come only to sigwait below */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((tls_cert_path == NULL) != (tls_key_path == NULL)) {
		fprintf(stderr, "shipgate-sandbox: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (tls_cert_path != NULL && ((o.tls_cert = read_pem(tls_cert_path)) == NULL ||
	                              (o.tls_key = read_pem(tls_key_path)) == NULL))
		return 2;
	const char *scheme = tls_cert_path != NULL ? "https" : "http";
	if (sbx_server_start(&srv, &o, err, sizeof(err)) != 0) {
		fprintf(stderr, "shipgate-sandbox: %s: %s\n", listen_at, err);
		return 1;
	}
	if (o.addr.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&o.addr)->sin6_addr, host,
		          sizeof(host));
		printf("listening on %s://[%s]:%u\n", scheme, host, sbx_server_port(srv));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&o.addr)->sin_addr, host, sizeof(host));
		printf("listening on %s://%s:%u\n", scheme, host, sbx_server_port(srv));
	}
	fflush(stdout);

	do {
		if (sigwait(&sigs, &sig) != 0)
			sig = SIGTERM;
	} while (sig != SIGINT && sig != SIGTERM);
	fprintf(stderr, "shipgate-sandbox: signal %d, stopping\n", sig);
	sbx_server_stop(srv);
	return 0;
}
