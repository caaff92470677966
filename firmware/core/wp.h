/* wolfpack MCU firmware: the portable core of docs/mcu-protocol.md.
 *
 * The core owns framing, reliability, identify, the scheduler, inputs, outputs and the
 * watchdog. A port (hal/...) owns the clock, the UART, the pins and the encoder and calls
 * the core from its main loop (wp_rx, wp_poll) and, for exact timing, from its timer and
 * encoder interrupts (wp_fire_due). docs/firmware.md lists what a port provides.
 */
#ifndef WP_H
#define WP_H

#include <stdbool.h>
#include <stdint.h>

#include "wp_config.h"

#define WP_PROTOCOL 2
#define WP_MAX_PAYLOAD 248
#define WP_SYNC 0x7E
#define WP_FLAG_SYN 0x01
#define WP_FLAG_NAK 0x02

/* started.reason */
#define WP_START_POWER_ON 0
#define WP_START_RESET_COMMAND 1
#define WP_START_WATCHDOG_RESET 2
#define WP_START_SIMULATED 3

/* output change causes (trace only) */
#define WP_CAUSE_COMMAND 0
#define WP_CAUSE_ACTION 1
#define WP_CAUSE_WATCHDOG 2
#define WP_CAUSE_RESET 3
#define WP_CAUSE_CONFIG 4

typedef struct {
    uint32_t clock_freq; /* nominal ticks per second of hal_clock() */
    uint8_t outputs;     /* <= WP_MAX_OUTPUTS */
    uint8_t inputs;      /* <= 32 */
    uint8_t encoders;    /* <= WP_MAX_ENCODERS */
    uint16_t protocol;   /* WP_PROTOCOL; another value only to test the host's refusal */
    uint32_t baud;       /* nominal line rate: sets the RTO bounds (0: none, 40/500 ms) */
    const char *firmware;
    const char *version;
} wp_board;

/* ---- the HAL: provided by each port ------------------------------------------------------ */
uint64_t hal_clock(void);                       /* ticks since boot */
uint16_t hal_tx_space(void);                    /* bytes hal_tx can take now */
void hal_tx(const uint8_t *data, uint16_t len); /* queue bytes for the UART */
void hal_output(uint8_t pin, uint8_t value);    /* drive an output now */
int64_t hal_encoder_count(uint8_t encoder);     /* current count */
void hal_timer_arm(uint64_t clock);             /* call wp_fire_due at clock (UINT64_MAX: none) */
void hal_encoder_arm(uint8_t encoder, int64_t count, bool armed); /* ... at this count */
uint8_t hal_irq_save(void);                     /* mask the ISRs that call wp_fire_due */
void hal_irq_restore(uint8_t state);
void hal_reset(uint8_t reason); /* restart the firmware (the core asks 10 ms after 'reset') */
#if WP_TRACE
void hal_trace_command(uint64_t clock, const uint8_t *msg, uint8_t len);
void hal_trace_output(uint64_t clock, uint8_t pin, uint8_t value, uint8_t cause);
void hal_trace_action(uint16_t action, uint8_t pin, uint8_t value, uint8_t kind, uint64_t target,
                      uint64_t clock, int64_t count);
void hal_trace_watchdog(uint64_t clock, uint64_t last_frame_clock);
void hal_trace_held(uint16_t sent, uint16_t dropped);
#endif

/* ---- the core ----------------------------------------------------------------------------- */
void wp_init(const wp_board *board, uint8_t reason);
/* Feed received bytes (main loop). Takes at most what it can process now and returns that
 * count: while a delivered frame waits for send-queue room the rest stays in the caller's
 * buffer (back-pressure instead of an unbounded queue). */
uint16_t wp_rx(const uint8_t *data, uint16_t len, uint64_t now);
/* Timers: retransmission, watchdog, encoder reports, the delayed reset; then send. */
void wp_poll(uint64_t now);
/* A digital input changed at clock/count (latched by the port as close to the edge as it can). */
void wp_input(uint8_t pin, uint8_t value, uint64_t clock, int64_t count);
/* The inputs' levels at boot (no edge events for them). */
void wp_input_init(uint32_t bits);
/* Fire every scheduled action that is due. ISR-safe: the exact-timing path. */
void wp_fire_due(uint64_t now);
/* The earliest deadline of wp_poll (retransmit, watchdog, reports), for a port that sleeps. */
uint64_t wp_poll_deadline(void);
/* Current output levels as a bit mask, and the input bits as last reported. */
uint32_t wp_outputs(void);
uint32_t wp_inputs(void);
uint32_t wp_safe_values(void); /* the safe value of each output, from config_output */
/* Counters: rx_frames, rx_bad, naks_sent, retransmits, duplicates, rx_garbage. */
void wp_stats(uint32_t out[6]);

/* framing (wp_frame.c) */
uint16_t wp_crc16(const uint8_t *data, uint16_t len);
uint16_t wp_frame_encode(uint8_t *out, uint8_t seq, uint8_t ack, uint8_t flags,
                         const uint8_t *payload, uint8_t len);

#endif
