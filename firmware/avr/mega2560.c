/* ATmega2560 HAL (Arduino Mega 2560 class boards, 16 MHz). Pins: docs/firmware.md, "Wiring".
 *
 *   clock      Timer1, prescaler 8: 2 MHz ticks, extended to 64 bits by its overflow interrupt;
 *              scheduled clock actions fire from the Timer1 compare-A interrupt
 *   UART       USART0 (the USB serial of the board), 250000 baud 8N1, interrupt driven rings
 *   encoder    quadrature A on D2 (INT4), B on D3 (INT5), both edges (x4); count actions fire
 *              from the encoder interrupt the moment the count is reached
 *   inputs     8 on PORTK (A8..A15, pin-change interrupt, pull-ups on): edges latched with
 *              clock and count in the interrupt
 *   outputs    8 on PORTA (D22..D29); high-impedance from reset until config_output
 *   watchdog   the AVR's hardware watchdog (250 ms) restarts a hung firmware ('started'
 *              reason 2); the protocol watchdog of 8.1 is the core's
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>

#include "../core/wp.h"

#ifndef WP_VERSION
#define WP_VERSION "1.0.0"
#endif
#ifndef WP_BAUD
#define WP_BAUD 250000UL
#endif
#define RESET_MAGIC 0x5AFEu

static const wp_board board = {
    F_CPU / 8, 8, 8, 1, WP_PROTOCOL, WP_BAUD, "wolfpack-mcu-mega2560", WP_VERSION,
};

/* ---- reset cause ---------------------------------------------------------------------------- */
static uint8_t mcusr_at_boot __attribute__((section(".noinit")));
static uint16_t reset_magic __attribute__((section(".noinit")));
void early_init(void) __attribute__((naked, used, section(".init3")));
void early_init(void)
{
    mcusr_at_boot = MCUSR;
    MCUSR = 0;
    wdt_disable(); /* a watchdog reset leaves it running */
}

void hal_reset(uint8_t reason)
{
    reset_magic = reason == WP_START_RESET_COMMAND ? RESET_MAGIC : 0;
    cli();
    wdt_enable(WDTO_15MS);
    for (;;)
        ;
}

uint8_t hal_irq_save(void)
{
    uint8_t s = SREG;
    cli();
    return s;
}
void hal_irq_restore(uint8_t state) { SREG = state; }

/* ---- clock: Timer1 at F_CPU / 8 --------------------------------------------------------- */
static volatile uint32_t t1_high;
static volatile uint64_t timer_target = UINT64_MAX;

uint64_t hal_clock(void)
{
    uint8_t s = SREG;
    uint32_t hi;
    uint16_t lo;
    cli();
    hi = t1_high;
    lo = TCNT1;
    if ((TIFR1 & _BV(TOV1)) && lo < 0x8000)
        hi++; /* overflowed while interrupts were off */
    SREG = s;
    return ((uint64_t)hi << 16) | lo;
}

ISR(TIMER1_OVF_vect) { t1_high++; }

void hal_timer_arm(uint64_t clock)
{
    uint8_t s = hal_irq_save();
    timer_target = clock;
    if (clock == UINT64_MAX) {
        TIMSK1 &= (uint8_t)~_BV(OCIE1A);
    } else {
        OCR1A = (uint16_t)clock; /* matches once per 32.8 ms wrap: the ISR checks the rest */
        TIFR1 = _BV(OCF1A);
        TIMSK1 |= _BV(OCIE1A);
    }
    hal_irq_restore(s);
}

ISR(TIMER1_COMPA_vect)
{
    uint64_t now = hal_clock();
    if (now >= timer_target)
        wp_fire_due(now);
}

/* ---- encoder: x4 quadrature on INT4/INT5 ------------------------------------------------- */
static volatile int64_t enc_count;
static volatile int64_t enc_target;
static volatile uint8_t enc_armed, enc_state;
static const int8_t QDEC[16] = {0, 1, -1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 0, -1, 1, 0};

int64_t hal_encoder_count(uint8_t encoder)
{
    uint8_t s = SREG;
    int64_t c;
    (void)encoder;
    cli();
    c = enc_count;
    SREG = s;
    return c;
}

void hal_encoder_arm(uint8_t encoder, int64_t count, bool armed)
{
    uint8_t s = hal_irq_save();
    (void)encoder;
    enc_target = count;
    enc_armed = armed;
    hal_irq_restore(s);
}

ISR(INT4_vect)
{
    enc_state = (uint8_t)(((enc_state << 2) | ((PINE >> 4) & 3)) & 0x0F);
    enc_count += QDEC[enc_state];
    if (enc_armed && enc_count >= enc_target)
        wp_fire_due(hal_clock());
}
ISR(INT5_vect, ISR_ALIASOF(INT4_vect));

/* ---- inputs: PORTK pin-change, edges latched in the interrupt ----------------------------- */
typedef struct {
    uint64_t clock;
    int64_t count;
    uint8_t pins;
} edge_t;
#define EDGES 16
static volatile edge_t edges[EDGES];
static volatile uint8_t edge_head, edge_count;
static uint8_t inputs_seen;

ISR(PCINT2_vect)
{
    if (edge_count < EDGES) {
        volatile edge_t *e = &edges[(edge_head + edge_count) % EDGES];
        e->pins = PINK;
        e->clock = hal_clock();
        e->count = enc_count;
        edge_count++;
    }
}

static void drain_edges(void)
{
    while (edge_count) {
        edge_t e;
        uint8_t s = hal_irq_save(), pin, changed;
        e.pins = edges[edge_head].pins;
        e.clock = edges[edge_head].clock;
        e.count = edges[edge_head].count;
        edge_head = (uint8_t)((edge_head + 1) % EDGES);
        edge_count--;
        hal_irq_restore(s);
        changed = (uint8_t)(e.pins ^ inputs_seen);
        inputs_seen = e.pins;
        for (pin = 0; pin < 8; pin++)
            if (changed & (1u << pin))
                wp_input(pin, (uint8_t)((e.pins >> pin) & 1), e.clock, e.count);
    }
}

/* ---- outputs: PORTA, high-impedance until first driven ------------------------------------- */
static const uint8_t BIT[8] = {1, 2, 4, 8, 16, 32, 64, 128};

void hal_output(uint8_t pin, uint8_t value)
{
    uint8_t bit, s;
    if (pin >= 8)
        return;
    bit = BIT[pin]; /* a shift by a variable is a loop on AVR */
    s = hal_irq_save();
    if (value)
        PORTA |= bit;
    else
        PORTA &= (uint8_t)~bit;
    DDRA |= bit; /* level first, then drive: no glitch to the other level */
    hal_irq_restore(s);
}

/* ---- UART0: lock-free rings (one-byte indices are atomic on AVR), so copying a frame never
 * masks the encoder's interrupt ---------------------------------------------------------- */
static volatile uint8_t rx_ring[256], tx_ring[256]; /* tx: about one frame, so a frame's
                                                       timer starts when it is handed over */
static volatile uint8_t rx_head, rx_tail, tx_head, tx_tail;

ISR(USART0_RX_vect)
{
    uint8_t b = UDR0, next = (uint8_t)(rx_tail + 1);
    if (next != rx_head) {
        rx_ring[rx_tail] = b;
        rx_tail = next;
    } /* else the byte is lost: the protocol recovers (NAK / retransmit) */
}

ISR(USART0_UDRE_vect)
{
    if (tx_head == tx_tail) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0);
        return;
    }
    UDR0 = tx_ring[tx_head];
    tx_head = (uint8_t)(tx_head + 1);
}

uint16_t hal_tx_space(void) { return (uint8_t)(tx_head - tx_tail - 1); }

void hal_tx(const uint8_t *data, uint16_t len)
{
    uint16_t i;
    for (i = 0; i < len && (uint8_t)(tx_tail + 1) != tx_head; i++) {
        tx_ring[tx_tail] = data[i];
        tx_tail = (uint8_t)(tx_tail + 1);
    }
    UCSR0B |= _BV(UDRIE0);
}

static uint16_t rx_take(uint8_t *buf, uint16_t max)
{
    uint16_t n = 0;
    while (rx_head != rx_tail && n < max) {
        buf[n++] = rx_ring[rx_head];
        rx_head = (uint8_t)(rx_head + 1);
    }
    return n;
}

/* ---- main ---------------------------------------------------------------------------------- */
int main(void)
{
    uint8_t reason = WP_START_POWER_ON;
    if (mcusr_at_boot & _BV(WDRF))
        reason = reset_magic == RESET_MAGIC ? WP_START_RESET_COMMAND : WP_START_WATCHDOG_RESET;
    reset_magic = 0;

    /* UART0: 250000 baud needs U2X (UBRR = 7 at 16 MHz, exact) */
    UCSR0A = _BV(U2X0);
    UBRR0 = (uint16_t)(F_CPU / 8 / WP_BAUD - 1);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
    /* Timer1: normal mode, clk/8 */
    TCCR1A = 0;
    TCCR1B = _BV(CS11);
    TIMSK1 = _BV(TOIE1);
    /* encoder on INT4/INT5, any edge, pull-ups */
    DDRE &= (uint8_t)~(_BV(PE4) | _BV(PE5));
    PORTE |= _BV(PE4) | _BV(PE5);
    EICRB = _BV(ISC40) | _BV(ISC50);
    EIMSK = _BV(INT4) | _BV(INT5);
    enc_state = (uint8_t)((PINE >> 4) & 3);
    /* inputs on PORTK with pull-ups, pin-change interrupt */
    DDRK = 0;
    PORTK = 0xFF;
    PCMSK2 = 0xFF;
    PCICR = _BV(PCIE2);
    /* outputs on PORTA stay high-impedance (the board's pull resistors hold the safe level) */
    DDRA = 0;
    PORTA = 0;

    wdt_enable(WDTO_250MS);
    sei();
    {
        uint8_t s = hal_irq_save();
        inputs_seen = PINK;
        hal_irq_restore(s);
    }
    wp_init(&board, reason);
    wp_input_init(inputs_seen); /* the levels at boot, without edge events */
    for (;;) {
        uint8_t buf[32];
        uint16_t n;
        uint64_t now;
        wdt_reset();
        n = rx_take(buf, sizeof buf);
        now = hal_clock();
        if (n)
            wp_rx(buf, n, now);
        drain_edges();
        wp_poll(hal_clock());
    }
}
