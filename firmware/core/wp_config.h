/* Sizes of the firmware's fixed buffers: every queue is bounded, nothing is allocated at run
 * time. A target overrides any of them with -D (the AVR build has 8 KiB of RAM). */
#ifndef WP_CONFIG_H
#define WP_CONFIG_H

#ifndef WP_RX_WINDOW
#define WP_RX_WINDOW 8 /* frames the host may send back to back (identify_response) */
#endif
#ifndef WP_TX_WINDOW
#define WP_TX_WINDOW 16 /* our unacknowledged data frames (kept for go-back-N) */
#endif
#ifndef WP_TXQ_BYTES
#define WP_TXQ_BYTES 8192 /* messages queued, not yet framed */
#endif
#ifndef WP_MAX_ACTIONS
#define WP_MAX_ACTIONS 64 /* pending scheduled actions and duration reverts */
#endif
#ifndef WP_FIRED_N
#define WP_FIRED_N (2 * WP_MAX_ACTIONS) /* fired actions the main loop has not reported yet */
#endif
#ifndef WP_MAX_HELD
#define WP_MAX_HELD 256 /* input_edge / action_done kept for the next host (section 3.3) */
#endif
#ifndef WP_MAX_OUTPUTS
#define WP_MAX_OUTPUTS 32
#endif
#ifndef WP_MAX_ENCODERS
#define WP_MAX_ENCODERS 1
#endif
#ifndef WP_ERRMSG_MAX
#define WP_ERRMSG_MAX 120 /* bytes of an error message (the protocol allows 200) */
#endif
#ifndef WP_TRACE
#define WP_TRACE 0 /* 1: call the hal_trace_* hooks (host build: the tests' view inside) */
#endif

#endif
