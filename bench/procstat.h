/*
 * procstat.h - what a benchmark reports about the process under test, read from /proc: its
 * resident memory (now and peak), its thread count and the CPU time it used. A sampler thread
 * reads /proc/PID/status every few milliseconds while a load runs, so a short peak of threads
 * or memory is seen.
 *
 * One sampler is driven by one thread (start/stop); the sampler thread only writes the fields
 * under the mutex.
 */
#ifndef SG_BENCH_PROCSTAT_H
#define SG_BENCH_PROCSTAT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One reading of /proc/PID/status and /proc/PID/stat. */
typedef struct ps_sample {
	long rss_kib; /* VmRSS */
	long hwm_kib; /* VmHWM: peak RSS since the process started */
	long threads; /* Threads */
	double cpu_s; /* utime + stime, seconds */
} ps_sample;

/* Reads pid's numbers into *s. Returns 0, or -1 when the process is gone. Any thread. */
int ps_read(int pid, ps_sample *s);

typedef struct ps_sampler {
	int pid;             /* process watched; 0: none (everything stays 0) */
	int interval_ms;     /* between readings */
	pthread_t thread;    /* the sampler */
	bool running;        /* thread started and not yet joined */
	pthread_mutex_t mtx; /* guards the fields below */
	bool stop;           /* asks the thread to exit */
	ps_sample before;    /* reading at ps_start */
	ps_sample after;     /* reading at ps_stop */
	long rss_max_kib;    /* largest VmRSS seen */
	long threads_min;    /* fewest threads seen */
	long threads_max;    /* most threads seen */
	long samples;        /* readings taken */
} ps_sampler;

/* Takes the "before" reading and starts sampling pid (no-op for pid 0). Returns 0 or -1. */
int ps_start(ps_sampler *p, int pid, int interval_ms);
/* Stops sampling and takes the "after" reading. */
void ps_stop(ps_sampler *p);
/* Writes "\"proc\": {...}" (a JSON member, no trailing comma); cpu_s is after - before. */
void ps_json(const ps_sampler *p, FILE *f);

/* CPU seconds (user + system) this process has used so far. */
double ps_self_cpu_s(void);

#ifdef __cplusplus
}
#endif

#endif /* SG_BENCH_PROCSTAT_H */
