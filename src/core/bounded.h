/*
 * bounded.h - run a call that should return but might not, and stop waiting for it.
 *
 * The one user is shutdown: nng 1.5.2's nng_close can wait forever on a socket whose pipes
 * went through a stalled peer (the close deadlock of nanomsg/nng #1543, fixed in later
 * releases). A gateway that has already drained and answered every call must still exit.
 */
#ifndef SG_BOUNDED_H
#define SG_BOUNDED_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Runs fn(arg) on a thread of its own and waits up to timeout_ms for it to return. Returns
 * true when it did. When it did not (or no thread could be started, in which case fn is run
 * here and true is returned), the thread is left running, detached: whatever fn uses must stay
 * valid until the process exits. Any thread.
 */
bool sg_run_bounded(void (*fn)(void *), void *arg, int64_t timeout_ms);

#endif /* SG_BOUNDED_H */
