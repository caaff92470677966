/* A HAL for testing the core from Python (ctypes): the clock and encoder are set by the
 * test, the UART is a capture buffer. Built as build/host/libwpcore.so (make testlib). */
#include <string.h>

#include "../core/wp.h"

static uint64_t now_clock;
static int64_t count;
static uint8_t txbuf[1 << 16];
static uint32_t txlen;
static uint8_t outputs[WP_MAX_OUTPUTS];
static wp_board board = {1000000, 8, 8, 1, WP_PROTOCOL, 250000, "wolfpack-mcu-test", "0"};

uint64_t hal_clock(void) { return now_clock; }
uint16_t hal_tx_space(void) { return (uint16_t)(sizeof txbuf - txlen > 60000 ? 60000 : 0); }
void hal_tx(const uint8_t *data, uint16_t len)
{
    memcpy(txbuf + txlen, data, len);
    txlen += len;
}
void hal_output(uint8_t pin, uint8_t value) { outputs[pin] = value; }
int64_t hal_encoder_count(uint8_t encoder) { return encoder ? 0 : count; }
void hal_timer_arm(uint64_t clock) { (void)clock; }
void hal_encoder_arm(uint8_t encoder, int64_t c, bool armed) { (void)encoder, (void)c, (void)armed; }
uint8_t hal_irq_save(void) { return 0; }
void hal_irq_restore(uint8_t state) { (void)state; }
void hal_reset(uint8_t reason) { wp_init(&board, reason); }
void hal_trace_command(uint64_t c, const uint8_t *msg, uint8_t len) { (void)c, (void)msg, (void)len; }
void hal_trace_output(uint64_t c, uint8_t pin, uint8_t v, uint8_t cause) { (void)c, (void)pin, (void)v, (void)cause; }
void hal_trace_action(uint16_t a, uint8_t p, uint8_t v, uint8_t k, uint64_t t, uint64_t c, int64_t n)
{
    (void)a, (void)p, (void)v, (void)k, (void)t, (void)c, (void)n;
}
void hal_trace_watchdog(uint64_t c, uint64_t l) { (void)c, (void)l; }
void hal_trace_held(uint16_t s, uint16_t d) { (void)s, (void)d; }

void t_init(uint64_t clock)
{
    now_clock = clock;
    count = 0;
    txlen = 0;
    wp_init(&board, WP_START_POWER_ON);
}
void t_set_clock(uint64_t clock) { now_clock = clock; }
void t_set_count(int64_t c) { count = c; }
uint8_t t_output(uint8_t pin) { return outputs[pin]; }
uint32_t t_take_tx(uint8_t *out, uint32_t max)
{
    uint32_t n = txlen < max ? txlen : max;
    memcpy(out, txbuf, n);
    memmove(txbuf, txbuf + n, txlen - n);
    txlen -= n;
    return n;
}
