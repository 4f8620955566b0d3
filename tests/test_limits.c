/*
 * test_limits.c - the caller edge against hostile peers, through the real gateway and sandbox:
 *
 *   - RLIMIT_NOFILE: a soft limit under the hard one is raised to it at start;
 *   - idle connections (the SP handshake done, then nothing): past max_connections, or past
 *     max_connections_per_peer for one address, a new one is closed as it is added, and the
 *     callers already connected are served, Track included (its upstream fds are reserved);
 *   - partial messages: a peer that announces a message and never finishes it costs at most
 *     recv_max_bytes (64 KiB by default), and one announcing more is dropped at once; new
 *     callers are served meanwhile;
 *   - ipc sockets: mode 0600 (or ipc.mode) and ipc.group whatever the umask; a path holding
 *     anything but a socket is refused and kept; a stale socket is replaced;
 *   - a small descriptor budget (soft = hard = 700, fd_reserve 256): max_connections is lowered
 *     to fit, and Track still reaches the provider while callers hold every caller fd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"
#include "testutil.h"

static char sandbox[256];
static const char *gw_bin, *sb_bin;

/* The port of a gateway's first URL (tcp://127.0.0.1:PORT). */
static int
gw_port(const hs_proc *gw)
{
	char url[256];
	if (hs_gateway_url(gw, 0, url, sizeof(url)) != 0)
		return -1;
	const char *c = strrchr(url, ':');
	return c ? atoi(c + 1) : -1;
}

/* A raw TCP connection to port with the SP handshake done as a REQ peer (its 8-byte header
 * sent, the REP's read back): a pipe nng adds. The fd, or -1. */
static int
sp_connect(int port)
{
	static const unsigned char hdr[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	unsigned char back[8];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr)) {
		close(fd);
		return -1;
	}
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, 2000) != 1 || read(fd, back, sizeof(back)) != (ssize_t)sizeof(back)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the gateway closed fd within ms (EOF or a reset), rather than keeping it. */
static bool
closed_within(int fd, int ms)
{
	unsigned char b[16];
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, ms) != 1)
		return false;
	ssize_t n = read(fd, b, sizeof(b));
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* The gateway's resident memory, KiB. */
static long
rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* The soft and hard "Max open files" of pid. */
static bool
nofile_of(pid_t pid, long *soft, long *hard)
{
	char path[64], line[256];
	bool ok = false;
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	FILE *f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Max open files %ld %ld", soft, hard) == 2) {
			ok = true;
			break;
		}
	if (f)
		fclose(f);
	return ok;
}

/* A Track of the BosCOD example through s: OK (the provider was reached). */
static void
track_ok(nng_socket s, const char *what)
{
	Shipgate__V1__TrackRequest req = SHIPGATE__V1__TRACK_REQUEST__INIT;
	req.provider = SHIPGATE__V1__PROVIDER__PROVIDER_BOSCOD;
	req.order_id = "BOS123";
	req.bypass_cache = true; /* upstream every time: it needs an fd on the provider side */
	Shipgate__V1__RpcReply *r = hs_call(s, "Track", &req.base, 5000, NULL);
	if (hs_code(r) != 0)
		fprintf(stderr, "  %s: Track got %d %s\n", what, hs_code(r), hs_reason(r));
	CHECK_INT(hs_code(r), 0);
	if (r)
		shipgate__v1__rpc_reply__free_unpacked(r, NULL);
}

static bool
start(hs_proc *gw, const char *const *extra)
{
	static const char *const listen[] = {"tcp://127.0.0.1:0", NULL};
	return hs_gateway_start(gw, gw_bin, sandbox, listen, extra) == 0;
}

/* Opens n handshaked idle connections into fds[]; returns how many the gateway kept. */
static int
open_idle(int port, int *fds, int n)
{
	int kept = 0;
	for (int i = 0; i < n; i++)
		fds[i] = sp_connect(port);
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0 && closed_within(fds[i], i == 0 ? 500 : 20)) {
			close(fds[i]);
			fds[i] = -1;
		}
		kept += fds[i] >= 0;
	}
	return kept;
}

static void
close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* RLIMIT_NOFILE: the gateway raises a low soft limit to the hard one. */
static void
test_rlimit(void)
{
	struct rlimit was, low;
	getrlimit(RLIMIT_NOFILE, &was);
	low = was;
	low.rlim_cur = 256 < was.rlim_max ? 256 : was.rlim_max;
	CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0); /* inherited by the gateway */
	hs_proc gw;
	bool up = start(&gw, NULL);
	setrlimit(RLIMIT_NOFILE, &was);
	CHECK(up);
	if (!up)
		return;
	long soft = 0, hard = 0;
	CHECK(nofile_of(gw.pid, &soft, &hard));
	CHECK(hard > 256);
	CHECK_INT(soft, hard);
	fprintf(stderr, "  RLIMIT_NOFILE: started with a soft limit of 256, now %ld (hard %ld)\n",
	        soft, hard);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

/* Idle connections past max_connections and past max_connections_per_peer. */
static void
test_idle_connections(void)
{
	enum { CAP = 40, N = 60 };
	int fds[N];
	hs_proc gw;
	char url[256];
	nng_socket s;

	const char *const extra[] = {"--set", "max_connections=40", "--set",
	                             "max_connections_per_peer=0", NULL};
	CHECK(start(&gw, extra));
	int port = gw_port(&gw);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0); /* a caller connected first */
	track_ok(s, "before");
	int kept = open_idle(port, fds, N);
	CHECK_INT(kept, CAP - 1); /* the caller holds one place */
	track_ok(s, "at the cap");
	/* a new caller cannot connect while the cap is held; once the peer lets go, it can */
	int extra_fd = sp_connect(port);
	CHECK(extra_fd < 0 || closed_within(extra_fd, 1000));
	if (extra_fd >= 0)
		close(extra_fd);
	close_all(fds, N);
	hs_sleep_ms(200);
	nng_socket s2;
	CHECK_INT(hs_dial(&s2, url), 0);
	track_ok(s2, "after the peer let go");
	nng_close(s2);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);

	/* per peer: one address holds 10 at most, whatever the total cap */
	const char *const per_peer[] = {"--set", "max_connections_per_peer=10", NULL};
	CHECK(start(&gw, per_peer));
	port = gw_port(&gw);
	kept = open_idle(port, fds, 15);
	CHECK_INT(kept, 10);
	close_all(fds, 15);
	hs_sleep_ms(200);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	track_ok(s, "per peer, after");
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	fprintf(stderr,
	        "  idle connections: %d of %d kept at max_connections=%d; 10 of 15 per "
	        "peer; callers served throughout\n",
	        CAP - 1, N, CAP);
}

/* Partial messages with the default limits: bounded memory, and new callers served. */
static void
test_partial_messages(void)
{
	enum { N = 300 };
	static int fds[N];
	hs_proc gw;
	char url[256];

	CHECK(start(&gw, NULL));
	int port = gw_port(&gw);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	hs_sleep_ms(200);
	long before = rss_kib(gw.pid);
	/* each announces 64 KiB - 16 and sends all of it but the last byte */
	size_t len = 64 * 1024 - 16;
	unsigned char *body = calloc(1, len);
	int held = 0;
	for (int i = 0; i < N; i++) {
		if ((fds[i] = sp_connect(port)) < 0)
			continue;
		unsigned char hdr[8] = {0};
		for (int b = 0; b < 8; b++)
			hdr[7 - b] = (unsigned char)(len >> (8 * b));
		if (write(fds[i], hdr, 8) == 8 &&
		    write(fds[i], body, len - 1) == (ssize_t)(len - 1))
			held++;
	}
	free(body);
	CHECK_INT(held, N);
	hs_sleep_ms(300);
	long after = rss_kib(gw.pid);
	long grew = after - before, bound = (long)N * 64 * 5 / 4 + 16 * 1024; /* KiB */
	fprintf(stderr, "  %d partial messages of 64 KiB: gateway RSS +%ld KiB (bound %ld KiB)\n",
	        N, grew, bound);
	CHECK(before > 0 && after > 0 && grew < bound);
	/* a new caller is served meanwhile */
	nng_socket s;
	CHECK_INT(hs_dial(&s, url), 0);
	track_ok(s, "beside partial messages");
	/* announcing more than recv_max_bytes: dropped at once, nothing allocated */
	int big = sp_connect(port);
	unsigned char hdr[8] = {0, 0, 0, 0, 0, 0x3f, 0xff, 0xf0}; /* 4 MiB - 16 */
	CHECK(big >= 0 && write(big, hdr, 8) == 8);
	CHECK(big >= 0 && closed_within(big, 2000));
	if (big >= 0)
		close(big);
	close_all(fds, N);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

/* Runs the gateway to its start-up failure: its exit status, its stderr into out[n]. */
static int
run_failing(const char *const *args, char *out, size_t n)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		close(pfd[0]);
		execv(gw_bin, (char *const *)args);
		_exit(127);
	}
	close(pfd[1]);
	size_t got = 0;
	ssize_t r;
	struct pollfd p = {pfd[0], POLLIN, 0};
	while (got + 1 < n && poll(&p, 1, 5000) == 1 &&
	       (r = read(pfd[0], out + got, n - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(pfd[0]);
	int status = 0;
	for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++)
		hs_sleep_ms(10);
	if (waitpid(pid, &status, WNOHANG) == 0) { /* it started: not what was wanted */
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ipc: the socket's mode and group hold whatever the umask; anything but a socket at the path
 * is refused and kept; a stale socket (a gateway killed) is replaced. */
static void
test_ipc_socket(void)
{
	char path[128], url[160], set_mode[64], set_group[64], msg[2048];
	struct stat st;
	hs_proc gw;
	snprintf(path, sizeof(path), "/tmp/shipgate-limits-%d.sock", (int)getpid());
	snprintf(url, sizeof(url), "ipc://%s", path);
	const char *const listen[] = {url, NULL};
	unlink(path);

	/* umask 000 at start: still 0600 */
	mode_t old = umask(0);
	int up = hs_gateway_start(&gw, gw_bin, sandbox, listen, NULL);
	umask(old);
	CHECK_INT(up, 0);
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0600);
	/* killed: the socket file stays behind, and the next gateway replaces it */
	CHECK_INT(WTERMSIG(hs_proc_stop(&gw, SIGKILL)), SIGKILL);
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	snprintf(set_mode, sizeof(set_mode), "ipc.mode=0660");
	snprintf(set_group, sizeof(set_group), "ipc.group=%d", (int)getgid());
	const char *const extra[] = {"--set", set_mode, "--set", set_group, NULL};
	old = umask(0077);
	up = hs_gateway_start(&gw, gw_bin, sandbox, listen, extra);
	umask(old);
	CHECK_INT(up, 0);
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0660);
	CHECK_INT(st.st_gid, getgid());
	nng_socket s;
	CHECK_INT(hs_dial(&s, url), 0);
	track_ok(s, "ipc 0660");
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
	unlink(path);

	/* a regular file, a directory: refused with a clear message, and kept */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("precious\n", f);
		fclose(f);
	}
	const char *const args[] = {gw_bin, "--quiet", "-l", url, NULL};
	CHECK_INT(run_failing(args, msg, sizeof(msg)), 1);
	CHECK(strstr(msg, "is not a socket") != NULL && strstr(msg, "regular file") != NULL);
	char back[32] = "";
	f = fopen(path, "r");
	CHECK(f != NULL && fgets(back, sizeof(back), f) != NULL);
	if (f)
		fclose(f);
	CHECK_STR(back, "precious\n");
	unlink(path);
	CHECK_INT(mkdir(path, 0700), 0);
	CHECK_INT(run_failing(args, msg, sizeof(msg)), 1);
	CHECK(strstr(msg, "a directory") != NULL);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	rmdir(path);
	/* a bad mode or group: refused at start */
	const char *const bad_mode[] = {gw_bin,  "--quiet",       "-l", url,
	                                "--set", "ipc.mode=0400", NULL};
	CHECK_INT(run_failing(bad_mode, msg, sizeof(msg)), 1);
	CHECK(strstr(msg, "ipc.mode") != NULL);
	const char *const bad_group[] = {
	        gw_bin, "--quiet", "-l", url, "--set", "ipc.group=no-such-group-here", NULL};
	CHECK_INT(run_failing(bad_group, msg, sizeof(msg)), 1);
	CHECK(strstr(msg, "no such group") != NULL);
	unlink(path);
	fprintf(stderr, "  ipc: 0600 under umask 000, 0660 and its group when asked; a file and a "
	                "directory at the path refused and kept\n");
}

/* A small fd budget: max_connections fits what is left after the reserve, and callers that
 * hold every caller fd cannot starve Track of its upstream connection. Last: it lowers this
 * process's hard limit for good. */
static void
test_fd_budget(void)
{
	enum { N = 500 };
	static int fds[N];
	struct rlimit rl = {700, 700};
	hs_proc gw;
	char url[256];
	nng_socket s;

	CHECK_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
	const char *const extra[] = {"--set", "upstream.fd_reserve=256", "--set",
	                             "max_connections_per_peer=0", NULL};
	CHECK(start(&gw, extra));
	int port = gw_port(&gw);
	CHECK_INT(hs_gateway_url(&gw, 0, url, sizeof(url)), 0);
	CHECK_INT(hs_dial(&s, url), 0);
	int kept = open_idle(port, fds, N);
	fprintf(stderr, "  fd budget 700, reserve 256: %d of %d idle connections kept\n", kept, N);
	CHECK(kept <= 700 - 256 && kept >= 700 - 256 - 2);
	for (int i = 0; i < 5; i++)
		track_ok(s, "with every caller fd held");
	close_all(fds, N);
	nng_close(s);
	CHECK_INT(hs_proc_stop(&gw, SIGTERM), 0);
}

int
main(int argc, char **argv)
{
	hs_test_start(argc, argv, 2, "SHIPGATED SANDBOX");
	gw_bin = argv[1];
	sb_bin = argv[2];
	hs_proc sb;
	if (hs_sandbox_start(&sb, sb_bin, sandbox, sizeof(sandbox)) != 0) {
		CHECK(0);
		TEST_MAIN_END();
	}
	test_rlimit();
	test_idle_connections();
	test_partial_messages();
	test_ipc_socket();
	test_fd_budget();
	CHECK_INT(hs_proc_stop(&sb, SIGTERM), 0);
	curl_global_cleanup();
	TEST_MAIN_END();
}
