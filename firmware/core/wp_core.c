/* The portable core of the wolfpack MCU firmware (docs/mcu-protocol.md).
 *
 * Single-threaded except wp_fire_due, which a port may call from its timer-compare and
 * encoder interrupts: the action table and the fired-action ring are only touched with those
 * interrupts masked (hal_irq_save) from the main loop. Every buffer is static and bounded.
 */
#include <string.h>

#include "wp.h"

#define HALF_SEQ 128
#define MAX_FRAME (WP_MAX_PAYLOAD + 7)

/* message ids (section 4) */
enum {
    M_IDENTIFY = 0x01, M_PING, M_GET_CLOCK, M_HEARTBEAT, M_SET_WATCHDOG, M_CONFIG_OUTPUT,
    M_SET_OUTPUT, M_SCHEDULE_AT_CLOCK, M_SCHEDULE_AT_COUNT, M_CANCEL_ACTION, M_GET_INPUTS,
    M_GET_ENCODER, M_SET_ENCODER_REPORT, M_GET_STATS, M_RESET,
    M_IDENTIFY_RESPONSE = 0x41, M_PONG, M_CLOCK, M_OK, M_ERROR, M_INPUTS, M_ENCODER_STATE, M_STATS,
    M_STARTED = 0x80, M_WATCHDOG_TRIPPED, M_INPUT_EDGE, M_ENCODER_REPORT, M_ACTION_DONE, M_FAULT,
};
enum {
    ERR_UNKNOWN = 1, ERR_BAD_ARGUMENT = 2, ERR_IN_PAST = 3, ERR_BUSY = 4, ERR_NOT_FOUND = 5,
    ERR_NOT_CONFIGURED = 6,
};
enum { FAULT_BAD_PAYLOAD = 1, FAULT_LATE_ACTION = 2, FAULT_INPUT = 3, FAULT_QUEUE = 4 };
enum { A_FREE = 0, A_CLOCK = 1, A_COUNT = 2, A_REVERT = 3 };

static const char COMMANDS[] =
    "identify,ping,get_clock,heartbeat,set_watchdog,config_output,set_output,"
    "schedule_at_clock,schedule_at_count,cancel_action,get_inputs,get_encoder,"
    "set_encoder_report,get_stats,reset";

/* size on the wire of each command, id 0x01..0x0F (none carries a string) */
static const uint8_t CMD_SIZE[16] = {0, 3, 7, 3, 1, 5, 5, 5, 19, 20, 5, 3, 4, 6, 3, 3};

static const wp_board *B;
static uint32_t ticks_per_ms;

/* ---- decoder (section 2.3) ---- */
static uint8_t dbuf[MAX_FRAME + 1];
static uint16_t dlen;
static uint64_t d_last;
static bool d_bad;
static uint32_t st_frames, st_bad, st_naks, st_retx, st_dups, st_garbage;

/* ---- receive state (section 3.2) ---- */
static bool rx_synced;
static uint8_t rx_expected;
static bool ack_owed, nak_owed, nak_sent_valid;
static uint8_t nak_sent_for;
static bool last_syn_valid;
static uint8_t last_syn_seq, last_syn_len;
static uint16_t last_syn_crc;

/* a delivered frame whose execution waits for send-queue room */
static uint8_t pend[WP_MAX_PAYLOAD];
static uint8_t pend_len, pend_pos;
static bool pend_active;

/* ---- transmit state (section 3.1) ---- */
typedef struct {
    uint64_t sent_at;
    uint8_t seq, flags, len, sends;
    uint8_t payload[WP_MAX_PAYLOAD];
} txframe;
static txframe txw[WP_TX_WINDOW];
static uint8_t tx_head, tx_count, resend_idx;
static uint8_t next_seq;
static bool send_syn, nak_base_valid;
static uint8_t nak_base;
static uint32_t srtt, rttvar, rto, rto_min, rto_max, rto_init;
static bool srtt_valid;
/* unsynchronised NAK (section 3.2): sent at most once per unak_every, answered by resending
 * our SYN frame alone */
static uint32_t unak_every;
static uint64_t last_unak;
static bool unak_sent, unak_owed, resend_syn_now;
/* messages dropped by the send queue's policy (section 3.4), reported by fault code 4 */
static uint32_t drop_reports, drop_edges, drop_done, drop_faults;

/* messages not yet framed: a byte ring of [len][message] records */
static uint8_t txq[WP_TXQ_BYTES];
static uint16_t q_head, q_used;
static uint16_t resp_reserve; /* room a command's answer may need (identify is the largest) */

/* ---- application ---- */
typedef struct {
    uint64_t target;
    uint32_t duration;
    uint16_t id;
    uint8_t kind, encoder, pin, value;
} action_t;
static action_t actions[WP_MAX_ACTIONS];

typedef struct {
    uint64_t clock, target;
    int64_t count;
    uint16_t id;
    uint8_t pin, value, kind;
} fired_t;
#define FIRED_N WP_FIRED_N
static fired_t fired[FIRED_N];
static volatile uint16_t fired_head, fired_count;

static uint32_t outputs_bits, safe_bits, configured_bits, inputs_bits;
static uint16_t watchdog_ms;
enum { WD_OFF, WD_ARMED, WD_TRIPPED };
static uint8_t wd_state; /* armed by set_watchdog only (section 8.1) */
static uint64_t last_host_frame;
static uint64_t report_at[WP_MAX_ENCODERS], report_every[WP_MAX_ENCODERS];
static bool reset_pending;
static uint64_t reset_at;

/* held events for the next host (section 3.3): fixed slots, newest kept */
#define HELD_SLOT 21
static uint8_t held[WP_MAX_HELD][HELD_SLOT];
static uint16_t held_head, held_count, held_dropped;
static uint32_t events_dropped;

/* ------------------------------------------------------------------------------------------ */
/* little-endian message building                                                           */
typedef struct {
    uint8_t b[WP_MAX_PAYLOAD];
    uint8_t n;
} msg_t;

static void put8(msg_t *m, uint8_t v) { if (m->n < WP_MAX_PAYLOAD) m->b[m->n++] = v; }
static void put16(msg_t *m, uint16_t v) { put8(m, (uint8_t)v); put8(m, (uint8_t)(v >> 8)); }
static void put32(msg_t *m, uint32_t v) { put16(m, (uint16_t)v); put16(m, (uint16_t)(v >> 16)); }
static void put64(msg_t *m, uint64_t v) { put32(m, (uint32_t)v); put32(m, (uint32_t)(v >> 32)); }
static void putstr(msg_t *m, const char *s, uint8_t max)
{
    uint8_t n = 0;
    while (s[n] && n < max)
        n++;
    put8(m, n);
    while (n--)
        put8(m, (uint8_t)*s++);
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) { return get16(p) | ((uint32_t)get16(p + 2) << 16); }
static uint64_t get64(const uint8_t *p) { return get32(p) | ((uint64_t)get32(p + 4) << 32); }

/* error texts without printf (avr-libc's has no 64-bit integers) */
typedef struct {
    char s[WP_ERRMSG_MAX + 1];
    uint8_t n;
} text_t;
static void t_str(text_t *t, const char *s)
{
    while (*s && t->n < WP_ERRMSG_MAX)
        t->s[t->n++] = *s++;
    t->s[t->n] = 0;
}
static void t_u64(text_t *t, uint64_t v)
{
    char d[21];
    uint8_t i = 0;
    do {
        d[i++] = (char)('0' + (uint8_t)(v % 10));
        v /= 10;
    } while (v);
    while (i && t->n < WP_ERRMSG_MAX)
        t->s[t->n++] = d[--i];
    t->s[t->n] = 0;
}
static void t_hex8(text_t *t, uint8_t v)
{
    static const char HEX[] = "0123456789abcdef";
    char h[5] = {'0', 'x', HEX[v >> 4], HEX[v & 15], 0};
    t_str(t, h);
}
static void t_i64(text_t *t, int64_t v)
{
    if (v < 0) {
        t_str(t, "-");
        t_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        t_u64(t, (uint64_t)v);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* send queue                                                                               */
static uint16_t q_free(void) { return (uint16_t)(WP_TXQ_BYTES - q_used); }

static bool q_push(const uint8_t *data, uint8_t len)
{
    uint16_t i, at;
    if ((uint16_t)(len + 1) > q_free())
        return false;
    at = (uint16_t)((q_head + q_used) % WP_TXQ_BYTES);
    txq[at] = len;
    for (i = 0; i < len; i++)
        txq[(at + 1 + i) % WP_TXQ_BYTES] = data[i];
    q_used = (uint16_t)(q_used + len + 1);
    return true;
}

static uint8_t q_peek_len(uint16_t offset) { return txq[(q_head + offset) % WP_TXQ_BYTES]; }

static void q_pop_into(uint8_t *out)
{
    uint8_t len = txq[q_head], i;
    for (i = 0; i < len; i++)
        out[i] = txq[(q_head + 1 + i) % WP_TXQ_BYTES];
    q_head = (uint16_t)((q_head + len + 1) % WP_TXQ_BYTES);
    q_used = (uint16_t)(q_used - len - 1);
}

static void send_msg(const msg_t *m) { (void)q_push(m->b, m->n); }

static void count_drop(uint8_t id)
{
    if (id == M_ENCODER_REPORT)
        drop_reports++;
    else if (id == M_INPUT_EDGE)
        drop_edges++;
    else if (id == M_ACTION_DONE)
        drop_done++;
    else
        drop_faults++;
}

/* Remove the oldest queued message of a droppable kind (reports first, then edges, finished
 * actions and faults); false if none is queued. */
static bool q_drop_one(bool reports)
{
    uint16_t off = 0, at, i, from, to;
    uint8_t len, id;
    while (off < q_used) {
        len = q_peek_len(off);
        id = txq[(q_head + off + 1) % WP_TXQ_BYTES];
        if (reports ? id == M_ENCODER_REPORT
                    : (id == M_INPUT_EDGE || id == M_ACTION_DONE || id == M_FAULT))
            break;
        off = (uint16_t)(off + len + 1);
    }
    if (off >= q_used)
        return false;
    count_drop(id);
    /* close the gap: move the records after it forward */
    at = off;
    from = (uint16_t)(off + len + 1);
    to = at;
    for (i = from; i < q_used; i++, to++)
        txq[(q_head + to) % WP_TXQ_BYTES] = txq[(q_head + i) % WP_TXQ_BYTES];
    q_used = (uint16_t)(q_used - len - 1);
    return true;
}

/* Section 3.4: an event that does not fit makes room by dropping older droppable messages;
 * responses, started and watchdog_tripped are never dropped. */
static bool send_event(const msg_t *m)
{
    bool droppable = m->b[0] != M_STARTED && m->b[0] != M_WATCHDOG_TRIPPED;
    while (q_free() < (uint16_t)(m->n + 1)) {
        if (!q_drop_one(true) && !q_drop_one(false)) {
            if (droppable) {
                count_drop(m->b[0]);
                return false;
            }
            events_dropped++; /* no room even for a never-dropped event: cannot happen */
            return false;
        }
    }
    return q_push(m->b, m->n);
}

/* fault code 4 once the queue has room again, naming what was dropped */
static void report_drops(void)
{
    static const char *const names[4] = {"encoder_report", "input_edge", "action_done", "fault"};
    uint32_t *counts[4] = {&drop_reports, &drop_edges, &drop_done, &drop_faults};
    text_t t;
    msg_t m;
    uint8_t i;
    bool first = true;
    if (!(drop_reports | drop_edges | drop_done | drop_faults))
        return;
    t.n = 0;
    t_str(&t, "send queue full: dropped ");
    for (i = 0; i < 4; i++) {
        if (!*counts[i])
            continue;
        if (!first)
            t_str(&t, ", ");
        first = false;
        t_u64(&t, *counts[i]);
        t_str(&t, " ");
        t_str(&t, names[i]);
    }
    m.n = 0;
    put8(&m, M_FAULT);
    put8(&m, FAULT_QUEUE);
    putstr(&m, t.s, WP_ERRMSG_MAX);
    if (q_free() < (uint16_t)(m.n + 1 + resp_reserve))
        return; /* later */
    q_push(m.b, m.n);
    drop_reports = drop_edges = drop_done = drop_faults = 0;
}

static void reply_error(uint16_t req, uint8_t code, const text_t *t)
{
    msg_t m;
    m.n = 0;
    put8(&m, M_ERROR);
    put16(&m, req);
    put8(&m, code);
    putstr(&m, t->s, WP_ERRMSG_MAX);
    send_msg(&m);
}

static void reply_ok(uint16_t req)
{
    msg_t m;
    m.n = 0;
    put8(&m, M_OK);
    put16(&m, req);
    send_msg(&m);
}

static void fault(uint8_t code, const text_t *t)
{
    msg_t m;
    m.n = 0;
    put8(&m, M_FAULT);
    put8(&m, code);
    putstr(&m, t->s, WP_ERRMSG_MAX);
    send_event(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* transmit side                                                                            */
static void rtt_reset(void)
{
    srtt_valid = false;
    srtt = rttvar = 0;
    rto = rto_init;
}

static void rtt_sample(uint32_t r)
{
    uint32_t g = ticks_per_ms * 2, v;
    if (!srtt_valid) {
        srtt = r;
        rttvar = r / 2;
        srtt_valid = true;
    } else {
        uint32_t diff = srtt > r ? srtt - r : r - srtt;
        rttvar = (3 * rttvar + diff) / 4;
        srtt = (7 * srtt + r) / 8;
    }
    v = 4 * rttvar > g ? 4 * rttvar : g;
    rto = srtt + v;
    if (rto < rto_min)
        rto = rto_min;
    if (rto > rto_max)
        rto = rto_max;
}

static void tx_restart(void)
{
    tx_count = 0;
    tx_head = 0;
    resend_idx = 0;
    q_head = q_used = 0;
    next_seq = 0;
    send_syn = true;
    nak_base_valid = false;
    rtt_reset();
}

static uint8_t ack_value(void) { return rx_synced ? rx_expected : 0; }

static bool send_frame(txframe *f, uint64_t now)
{
    uint8_t buf[MAX_FRAME];
    uint16_t n;
    if (hal_tx_space() < (uint16_t)(f->len + 7))
        return false;
    n = wp_frame_encode(buf, f->seq, ack_value(), f->flags, f->payload, f->len);
    hal_tx(buf, n);
    f->sent_at = now;
    return true;
}

static bool send_control(uint8_t flags)
{
    uint8_t buf[7];
    if (hal_tx_space() < 7)
        return false;
    hal_tx(buf, wp_frame_encode(buf, 0, ack_value(), flags, 0, 0));
    return true;
}

static void on_ack(uint8_t ack, uint64_t now)
{
    uint8_t n, i;
    bool have_sample = false;
    uint32_t sample = 0;
    if (!tx_count)
        return;
    n = (uint8_t)(ack - txw[tx_head].seq);
    if (n > tx_count)
        return; /* bogus */
    for (i = 0; i < n; i++) {
        txframe *f = &txw[tx_head];
        if (f->sends == 1 && !(f->flags & WP_FLAG_SYN)) { /* no sample from a SYN (3.1) */
            sample = (uint32_t)(now - f->sent_at);
            have_sample = true;
        }
        tx_head = (uint8_t)((tx_head + 1) % WP_TX_WINDOW);
        tx_count--;
    }
    resend_idx = resend_idx > n ? (uint8_t)(resend_idx - n) : 0;
    if (have_sample)
        rtt_sample(sample);
    if (n)
        nak_base_valid = false;
}

static void flush(uint64_t now)
{
    bool sent_any = false;
    if (resend_syn_now) { /* answer to an unsynchronised NAK: our SYN frame alone */
        resend_syn_now = false;
        if (tx_count && (txw[tx_head].flags & WP_FLAG_SYN) && send_frame(&txw[tx_head], now)) {
            txw[tx_head].sends = 2;
            st_retx++;
            sent_any = true;
        }
    }
    /* go-back-N: retransmit on timeout */
    if (tx_count && resend_idx >= tx_count && now - txw[tx_head].sent_at >= rto) {
        rto = rto * 2 > rto_max ? rto_max : rto * 2;
        resend_idx = 0;
    }
    while (resend_idx < tx_count) {
        txframe *f = &txw[(tx_head + resend_idx) % WP_TX_WINDOW];
        if (!send_frame(f, now))
            return;
        f->sends = f->sends < 255 ? (uint8_t)(f->sends + 1) : 255;
        st_retx++;
        resend_idx++;
        sent_any = true;
    }
    /* new frames within the window */
    while (q_used && tx_count < WP_TX_WINDOW) {
        txframe *f = &txw[(tx_head + tx_count) % WP_TX_WINDOW];
        uint16_t size = 0, off = 0;
        while (off < q_used) {
            uint8_t len = q_peek_len(off);
            if (size + len > WP_MAX_PAYLOAD)
                break;
            size = (uint16_t)(size + len);
            off = (uint16_t)(off + len + 1);
        }
        if (hal_tx_space() < size + 7)
            break;
        f->len = 0;
        while (f->len < size) {
            uint8_t len = q_peek_len(0);
            q_pop_into(f->payload + f->len);
            f->len = (uint8_t)(f->len + len);
        }
        f->seq = next_seq++;
        f->flags = send_syn ? WP_FLAG_SYN : 0;
        send_syn = false;
        f->sends = 1;
        tx_count++;
        resend_idx = tx_count;
        send_frame(f, now);
        sent_any = true;
    }
    if (unak_owed && !rx_synced) {
        uint8_t buf[7];
        if (hal_tx_space() >= 7) {
            hal_tx(buf, wp_frame_encode(buf, 0, 0, WP_FLAG_SYN | WP_FLAG_NAK, 0, 0));
            st_naks++;
            unak_owed = false;
            unak_sent = true;
            last_unak = now;
        }
    }
    unak_owed = false;
    if (nak_owed) {
        if (send_control(WP_FLAG_NAK)) {
            st_naks++;
            nak_owed = ack_owed = false;
        }
    } else if (ack_owed) {
        if (sent_any || send_control(0))
            ack_owed = false;
    }
}

static void request_nak(uint64_t now)
{
    if (!rx_synced) { /* section 3.2: NAK while unsynchronised */
        if (!unak_sent || now - last_unak >= unak_every)
            unak_owed = true;
        return;
    }
    if (nak_sent_valid && nak_sent_for == rx_expected)
        return;
    nak_sent_for = rx_expected;
    nak_sent_valid = true;
    nak_owed = true;
}

/* ------------------------------------------------------------------------------------------ */
/* scheduler                                                                                */
/* the earliest targets, so the interrupt path checks two numbers, not the table */
static uint64_t next_clock = UINT64_MAX;
static int64_t next_count[WP_MAX_ENCODERS];
static bool count_armed[WP_MAX_ENCODERS];

static void rearm(void) /* interrupts masked by the caller */
{
    uint64_t next = UINT64_MAX;
    int64_t cnext[WP_MAX_ENCODERS];
    bool carmed[WP_MAX_ENCODERS];
    uint8_t i;
    for (i = 0; i < WP_MAX_ENCODERS; i++) {
        carmed[i] = false;
        cnext[i] = 0;
    }
    for (i = 0; i < WP_MAX_ACTIONS; i++) {
        action_t *a = &actions[i];
        if (a->kind == A_CLOCK || a->kind == A_REVERT) {
            if (a->target < next)
                next = a->target;
        } else if (a->kind == A_COUNT) {
            int64_t c = (int64_t)a->target;
            if (!carmed[a->encoder] || c < cnext[a->encoder]) {
                cnext[a->encoder] = c;
                carmed[a->encoder] = true;
            }
        }
    }
    next_clock = next;
    hal_timer_arm(next);
    for (i = 0; i < WP_MAX_ENCODERS && i < B->encoders; i++) {
        next_count[i] = cnext[i];
        count_armed[i] = carmed[i];
        hal_encoder_arm(i, carmed[i] ? cnext[i] : 0, carmed[i]);
    }
}

static void set_output(uint8_t pin, uint8_t value, uint8_t cause, uint64_t now)
{
    uint32_t bit = (uint32_t)1 << pin;
    hal_output(pin, value ? 1 : 0);
    if (value)
        outputs_bits |= bit;
    else
        outputs_bits &= ~bit;
#if WP_TRACE
    hal_trace_output(now, pin, value ? 1 : 0, cause);
#else
    (void)cause;
    (void)now;
#endif
}

void wp_fire_due(uint64_t now)
{
    uint8_t i, s = hal_irq_save();
    bool changed = false, any = now >= next_clock;
    int64_t counts[WP_MAX_ENCODERS];
    for (i = 0; i < WP_MAX_ENCODERS; i++)
        counts[i] = 0;
    for (i = 0; i < WP_MAX_ENCODERS && i < B->encoders; i++) {
        counts[i] = hal_encoder_count(i);
        if (count_armed[i] && counts[i] >= next_count[i])
            any = true;
    }
    if (!any) { /* the common case: nothing due */
        hal_irq_restore(s);
        return;
    }
    for (i = 0; i < WP_MAX_ACTIONS; i++) {
        action_t *a = &actions[i];
        bool due;
        int64_t count;
        if (a->kind == A_FREE)
            continue;
        if (a->kind == A_COUNT)
            due = counts[a->encoder] >= (int64_t)a->target;
        else
            due = now >= a->target;
        if (!due)
            continue;
        hal_output(a->pin, a->value); /* first: the instant that matters */
        count = counts[a->kind == A_COUNT ? a->encoder : 0];
        set_output(a->pin, a->value, WP_CAUSE_ACTION, now);
        if (fired_count < FIRED_N) {
            fired_t *f = &fired[(fired_head + fired_count) % FIRED_N];
            f->clock = now;
            f->count = count;
            f->target = a->target;
            f->id = a->id;
            f->pin = a->pin;
            f->value = a->value;
            f->kind = a->kind;
            fired_count++;
        }
        if (a->kind != A_REVERT && a->duration) {
            a->kind = A_REVERT;
            a->target = now + a->duration;
            a->value = a->value ? 0 : 1;
        } else {
            a->kind = A_FREE;
        }
        changed = true;
    }
    if (changed)
        rearm();
    hal_irq_restore(s);
}

static void drain_fired(void)
{
    while (fired_count) {
        fired_t f;
        msg_t m;
        uint8_t s = hal_irq_save();
        f = fired[fired_head];
        hal_irq_restore(s);
        if (f.kind != A_REVERT) {
            m.n = 0;
            put8(&m, M_ACTION_DONE);
            put16(&m, f.id);
            put8(&m, f.pin);
            put8(&m, f.value);
            put64(&m, f.clock);
            put64(&m, (uint64_t)f.count);
            if (q_free() < (uint16_t)(m.n + 1 + 40))
                return; /* kept in the ring until there is room */
            q_push(m.b, m.n);
            if (f.kind == A_CLOCK && f.clock > f.target &&
                f.clock - f.target > (uint64_t)ticks_per_ms) { /* late fault (7) */
                text_t t;
                t.n = 0;
                t_str(&t, "action ");
                t_u64(&t, f.id);
                t_str(&t, " fired ");
                t_u64(&t, (f.clock - f.target) * 1000000u / B->clock_freq);
                t_str(&t, " us late");
                fault(FAULT_LATE_ACTION, &t);
            }
        }
#if WP_TRACE
        hal_trace_action(f.id, f.pin, f.value, f.kind, f.target, f.clock, f.count);
#endif
        s = hal_irq_save();
        fired_head = (uint16_t)((fired_head + 1) % FIRED_N);
        fired_count--;
        hal_irq_restore(s);
    }
}

static void cancel_all_actions(void)
{
    uint8_t i, s = hal_irq_save();
    for (i = 0; i < WP_MAX_ACTIONS; i++)
        actions[i].kind = A_FREE;
    rearm();
    hal_irq_restore(s);
}

/* ------------------------------------------------------------------------------------------ */
/* held events (section 3.3)                                                                */
static uint8_t out_msg_size(const uint8_t *p, uint16_t avail)
{
    uint16_t n;
    switch (p[0]) {
    case M_IDENTIFY_RESPONSE:
        n = 17;
        if (avail < n)
            return 0;
        n = (uint16_t)(n + p[14]);
        if (avail < n + 2)
            return 0;
        n = (uint16_t)(n + p[n]);
        if (avail < n + 2)
            return 0;
        n = (uint16_t)(n + p[n]);
        break;
    case M_PONG: n = 7; break;
    case M_CLOCK: n = 11; break;
    case M_OK: n = 3; break;
    case M_ERROR: n = (uint16_t)(avail >= 5 ? 5 + p[4] : 5); break;
    case M_INPUTS: n = 7; break;
    case M_ENCODER_STATE: n = 20; break;
    case M_STATS: n = 27; break;
    case M_STARTED: n = 10; break;
    case M_WATCHDOG_TRIPPED: n = 13; break;
    case M_INPUT_EDGE: n = 19; break;
    case M_ENCODER_REPORT: n = 18; break;
    case M_ACTION_DONE: n = 21; break;
    case M_FAULT: n = (uint16_t)(avail >= 3 ? 3 + p[2] : 3); break;
    default: return 0;
    }
    return n <= avail ? (uint8_t)n : 0;
}

static void hold(const uint8_t *p, uint8_t n)
{
    uint16_t at;
    if (held_count == WP_MAX_HELD) { /* keep the newest */
        held_head = (uint16_t)((held_head + 1) % WP_MAX_HELD);
        held_count--;
        held_dropped++;
    }
    at = (uint16_t)((held_head + held_count) % WP_MAX_HELD);
    memcpy(held[at], p, n);
    held_count++;
}

static void hold_payload(const uint8_t *p, uint16_t len)
{
    uint16_t pos = 0;
    while (pos < len) {
        uint8_t n = out_msg_size(p + pos, (uint16_t)(len - pos));
        if (!n)
            return;
        if (p[pos] == M_INPUT_EDGE || p[pos] == M_ACTION_DONE)
            hold(p + pos, n);
        pos = (uint16_t)(pos + n);
    }
}

static void collect_held(void)
{
    uint8_t i, buf[WP_MAX_PAYLOAD];
    for (i = 0; i < tx_count; i++) {
        txframe *f = &txw[(tx_head + i) % WP_TX_WINDOW];
        hold_payload(f->payload, f->len);
    }
    while (q_used) {
        uint8_t len = q_peek_len(0);
        q_pop_into(buf);
        hold_payload(buf, len);
    }
}

static void send_held(void)
{
    uint16_t sent = 0;
    while (held_count) {
        uint8_t *p = held[held_head];
        if (!q_push(p, p[0] == M_INPUT_EDGE ? 19 : 21))
            break;
        held_head = (uint16_t)((held_head + 1) % WP_MAX_HELD);
        held_count--;
        sent++;
    }
#if WP_TRACE
    hal_trace_held(sent, held_dropped);
#else
    (void)sent;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* commands                                                                                 */
static bool check_pin(uint16_t req, uint8_t pin)
{
    text_t t;
    if (pin < B->outputs)
        return true;
    t.n = 0;
    t_str(&t, "output ");
    t_u64(&t, pin);
    t_str(&t, " does not exist (0..");
    t_u64(&t, (uint64_t)(B->outputs - 1));
    t_str(&t, ")");
    reply_error(req, ERR_BAD_ARGUMENT, &t);
    return false;
}

static bool check_configured(uint16_t req, uint8_t pin)
{
    text_t t;
    if ((configured_bits >> pin) & 1)
        return true;
    t.n = 0;
    t_str(&t, "output ");
    t_u64(&t, pin);
    t_str(&t, " not configured");
    reply_error(req, ERR_NOT_CONFIGURED, &t);
    return false;
}

static bool check_encoder(uint16_t req, uint8_t enc)
{
    text_t t;
    if (enc < B->encoders)
        return true;
    t.n = 0;
    t_str(&t, "encoder ");
    t_u64(&t, enc);
    t_str(&t, " does not exist");
    reply_error(req, ERR_BAD_ARGUMENT, &t);
    return false;
}

static int find_action(uint16_t id)
{
    uint8_t i;
    for (i = 0; i < WP_MAX_ACTIONS; i++)
        if ((actions[i].kind == A_CLOCK || actions[i].kind == A_COUNT) && actions[i].id == id)
            return i;
    return -1;
}

static void schedule(const uint8_t *p, bool at_count, uint64_t now)
{
    uint16_t req = get16(p + 1), id = get16(p + 3);
    uint8_t enc = 0, pin, value;
    uint32_t duration;
    uint64_t target;
    text_t t;
    int slot = -1;
    uint8_t i, s;
    if (at_count) {
        enc = p[5];
        target = get64(p + 6);
        pin = p[14];
        value = p[15];
        duration = get32(p + 16);
    } else {
        target = get64(p + 5);
        pin = p[13];
        value = p[14];
        duration = get32(p + 15);
    }
    t.n = 0;
    if (!check_pin(req, pin) || !check_configured(req, pin))
        return;
    if (find_action(id) >= 0) {
        t_str(&t, "action ");
        t_u64(&t, id);
        t_str(&t, " is already pending");
        reply_error(req, ERR_BUSY, &t);
        return;
    }
    if (at_count) {
        int64_t count;
        if (!check_encoder(req, enc))
            return;
        count = hal_encoder_count(enc);
        if ((int64_t)target <= count) {
            t_str(&t, "encoder count ");
            t_i64(&t, (int64_t)target);
            t_str(&t, " already passed (now ");
            t_i64(&t, count);
            t_str(&t, ", ");
            t_i64(&t, count - (int64_t)target);
            t_str(&t, " counts late)");
            reply_error(req, ERR_IN_PAST, &t);
            return;
        }
    } else if (target <= now) {
        uint64_t late = now - target, us = late * 1000000u / B->clock_freq;
        t_str(&t, "clock ");
        t_u64(&t, target);
        t_str(&t, " is ");
        t_u64(&t, late);
        t_str(&t, " ticks (");
        t_u64(&t, us / 1000);
        t_str(&t, ".");
        t_u64(&t, (us % 1000) / 100);
        t_u64(&t, (us % 100) / 10);
        t_u64(&t, us % 10);
        t_str(&t, " ms) in the past (now ");
        t_u64(&t, now);
        t_str(&t, ")");
        reply_error(req, ERR_IN_PAST, &t);
        return;
    }
    for (i = 0; i < WP_MAX_ACTIONS; i++)
        if (actions[i].kind == A_FREE) {
            slot = i;
            break;
        }
    if (slot < 0) {
        t_str(&t, "no room for another action (");
        t_u64(&t, WP_MAX_ACTIONS);
        t_str(&t, " pending or reverting)");
        reply_error(req, ERR_BUSY, &t);
        return;
    }
    s = hal_irq_save();
    actions[slot].target = target;
    actions[slot].duration = duration;
    actions[slot].id = id;
    actions[slot].encoder = enc;
    actions[slot].pin = pin;
    actions[slot].value = value ? 1 : 0;
    actions[slot].kind = at_count ? A_COUNT : A_CLOCK;
    rearm();
    hal_irq_restore(s);
    reply_ok(req);
}

static void cmd_identify(uint16_t req)
{
    msg_t m;
    m.n = 0;
    put8(&m, M_IDENTIFY_RESPONSE);
    put16(&m, req);
    put16(&m, B->protocol);
    put8(&m, WP_RX_WINDOW);
    put8(&m, WP_MAX_PAYLOAD);
    put32(&m, B->clock_freq);
    put8(&m, B->outputs);
    put8(&m, B->inputs);
    put8(&m, B->encoders);
    putstr(&m, B->firmware, 40);
    putstr(&m, B->version, 20);
    putstr(&m, COMMANDS, 200);
    send_msg(&m);
    send_held();
    report_drops();
}

static void execute(const uint8_t *p, uint8_t n, uint64_t now)
{
    uint16_t req = n >= 3 ? get16(p + 1) : 0;
    msg_t m;
    text_t t;
    uint8_t i;
    (void)n;
    m.n = 0;
    t.n = 0;
#if WP_TRACE
    hal_trace_command(now, p, n);
#endif
    switch (p[0]) {
    case M_IDENTIFY:
        cmd_identify(req);
        break;
    case M_PING:
        put8(&m, M_PONG);
        put16(&m, req);
        put32(&m, get32(p + 3));
        send_msg(&m);
        break;
    case M_GET_CLOCK:
        put8(&m, M_CLOCK);
        put16(&m, req);
        put64(&m, hal_clock());
        send_msg(&m);
        break;
    case M_HEARTBEAT:
        break;
    case M_SET_WATCHDOG:
        if (get16(p + 3) < 10) {
            t_str(&t, "watchdog timeout must be >= 10 ms");
            reply_error(req, ERR_BAD_ARGUMENT, &t);
            break;
        }
        watchdog_ms = get16(p + 3);
        wd_state = WD_ARMED; /* armed by set_watchdog only (8.1) */
        last_host_frame = now;
        reply_ok(req);
        break;
    case M_CONFIG_OUTPUT:
        if (!check_pin(req, p[3]))
            break;
        {
            uint32_t bit = (uint32_t)1 << p[3];
            bool safe = p[4] != 0, was = (safe_bits & bit) != 0;
            if (!(configured_bits & bit) || was != safe) /* drive it safe at once (4) */
                set_output(p[3], safe, WP_CAUSE_CONFIG, now);
            configured_bits |= bit;
            if (safe)
                safe_bits |= bit;
            else
                safe_bits &= ~bit;
        }
        reply_ok(req);
        break;
    case M_SET_OUTPUT:
        if (!check_pin(req, p[3]) || !check_configured(req, p[3]))
            break;
        set_output(p[3], p[4], WP_CAUSE_COMMAND, now);
        reply_ok(req);
        break;
    case M_SCHEDULE_AT_CLOCK:
        schedule(p, false, hal_clock());
        break;
    case M_SCHEDULE_AT_COUNT:
        schedule(p, true, now);
        break;
    case M_CANCEL_ACTION: {
        int slot = find_action(get16(p + 3));
        if (slot < 0) {
            t_str(&t, "no pending action ");
            t_u64(&t, get16(p + 3));
            reply_error(req, ERR_NOT_FOUND, &t);
            break;
        }
        i = hal_irq_save();
        actions[slot].kind = A_FREE;
        rearm();
        hal_irq_restore(i);
        reply_ok(req);
        break;
    }
    case M_GET_INPUTS:
        put8(&m, M_INPUTS);
        put16(&m, req);
        put32(&m, inputs_bits);
        send_msg(&m);
        break;
    case M_GET_ENCODER:
        if (!check_encoder(req, p[3]))
            break;
        put8(&m, M_ENCODER_STATE);
        put16(&m, req);
        put8(&m, p[3]);
        {
            uint64_t c = hal_clock();
            put64(&m, (uint64_t)hal_encoder_count(p[3]));
            put64(&m, c);
        }
        send_msg(&m);
        break;
    case M_SET_ENCODER_REPORT:
        if (!check_encoder(req, p[3]))
            break;
        report_every[p[3]] = (uint64_t)get16(p + 4) * ticks_per_ms;
        report_at[p[3]] = now + report_every[p[3]];
        reply_ok(req);
        break;
    case M_GET_STATS: {
        uint32_t s[6];
        wp_stats(s);
        put8(&m, M_STATS);
        put16(&m, req);
        for (i = 0; i < 6; i++)
            put32(&m, s[i]);
        send_msg(&m);
        break;
    }
    case M_RESET:
        reset_pending = true;
        reset_at = now + 10 * (uint64_t)ticks_per_ms;
        pend_pos = pend_len; /* reset ends its payload (4) */
        break;
    }
}

/* Execute the delivered frame from pend_pos on, as far as the send queue has room. */
static void run_pending(uint64_t now)
{
    while (pend_active && pend_pos < pend_len) {
        uint8_t id = pend[pend_pos];
        uint8_t size = id >= 1 && id <= 15 ? CMD_SIZE[id] : 0;
        if (q_free() < resp_reserve)
            return; /* wait for room: the frame stays pending */
        if (!size || pend_pos + size > pend_len) {
            text_t t;
            t.n = 0;
            if (!size && pend_pos + 3 <= pend_len) { /* req comes first (4): answer it */
                t_str(&t, "unknown command id ");
                t_hex8(&t, id);
                reply_error(get16(pend + pend_pos + 1), ERR_UNKNOWN, &t);
                t.n = 0;
            }
            t_str(&t, size ? "truncated command id " : "unknown command id ");
            t_hex8(&t, id);
            t_str(&t, " at payload byte ");
            t_u64(&t, pend_pos);
            t_str(&t, ": ");
            t_u64(&t, (uint64_t)(pend_len - pend_pos));
            t_str(&t, " bytes skipped");
            fault(FAULT_BAD_PAYLOAD, &t);
            break;
        }
        execute(pend + pend_pos, size, now);
        if (pend_pos < pend_len)
            pend_pos = (uint8_t)(pend_pos + size);
    }
    pend_active = false;
}

/* ------------------------------------------------------------------------------------------ */
/* receive side                                                                             */
static void deliver(const uint8_t *payload, uint8_t len, uint64_t now)
{
    memcpy(pend, payload, len);
    pend_len = len;
    pend_pos = 0;
    pend_active = true;
    run_pending(now);
}

static uint64_t wire_ticks(uint8_t len)
{
    return B->baud ? (uint64_t)(len + 7) * 10 * B->clock_freq / B->baud : 0;
}

static void synced_nak(void)
{
    if (tx_count && (!nak_base_valid || nak_base != txw[tx_head].seq)) {
        nak_base = txw[tx_head].seq;
        nak_base_valid = true;
        resend_idx = 0;
    }
}

static void on_frame(const uint8_t *f, uint64_t now)
{
    uint8_t len = f[1], seq = f[2], ack = f[3], flags = f[4], d;
    uint16_t crc = (uint16_t)((f[5 + len] << 8) | f[6 + len]);
    bool syn = flags & WP_FLAG_SYN, nak = flags & WP_FLAG_NAK;
    last_host_frame = now; /* every valid host frame feeds the watchdog (8.1) */
    if (wd_state == WD_TRIPPED)
        wd_state = WD_ARMED;
    if (!len && nak && (syn || !rx_synced)) {
        /* an unsynchronised NAK (3.1): its ACK means nothing; resend our SYN frame alone,
         * unless a copy of it is still leaving the wire (that copy is the answer) */
        if (tx_count && (txw[tx_head].flags & WP_FLAG_SYN) &&
            now - txw[tx_head].sent_at >= wire_ticks(txw[tx_head].len))
            resend_syn_now = true;
        return;
    }
    if (!len) {
        if (rx_synced) {
            on_ack(ack, now);
            if (nak)
                synced_nak();
        }
        return;
    }
    if (syn) {
        if (rx_synced && last_syn_valid && last_syn_seq == seq && last_syn_len == len &&
            last_syn_crc == crc) {
            on_ack(ack, now); /* a resent copy, not a new SYN: its ACK counts */
            st_dups++;
            ack_owed = true;
            return;
        }
        /* a new SYN's ACK counts only if our oldest frame is a SYN too (3.2): a new host
         * knows nothing of our old sequence space */
        if (!rx_synced || !tx_count || (txw[tx_head].flags & WP_FLAG_SYN))
            on_ack(ack, now);
        last_syn_valid = true;
        last_syn_seq = seq;
        last_syn_len = len;
        last_syn_crc = crc;
        rx_synced = true;
        rx_expected = (uint8_t)(seq + 1);
        ack_owed = true;
        nak_owed = unak_owed = false;
        nak_sent_valid = false;
        /* a new host session (3.3): a new sequence space, encoder reports off; the machine's
         * state stays and what it did while no host listened is held for the new host */
        collect_held();
        tx_restart();
        {
            uint8_t e;
            for (e = 0; e < WP_MAX_ENCODERS; e++)
                report_every[e] = 0;
        }
        pend_active = false;
        deliver(f + 5, len, now);
        return;
    }
    if (!rx_synced) {
        request_nak(now); /* the peer's frames after a SYN we never saw */
        return;
    }
    on_ack(ack, now);
    if (nak)
        synced_nak();
    d = (uint8_t)(seq - rx_expected);
    if (d == 0) {
        if (pend_active)
            return; /* still executing the last frame: the host resends this one */
        rx_expected++;
        ack_owed = true;
        nak_sent_valid = false;
        deliver(f + 5, len, now);
    } else if (d < HALF_SEQ) {
        request_nak(now);
    } else {
        st_dups++;
        ack_owed = true;
    }
}

static void drop_first(void)
{
    memmove(dbuf, dbuf + 1, --dlen);
}

static void scan(uint64_t now)
{
    for (;;) {
        uint16_t i, total;
        uint8_t len;
        if (!dlen)
            return;
        if (dbuf[0] != WP_SYNC) {
            for (i = 1; i < dlen && dbuf[i] != WP_SYNC; i++)
                ;
            st_garbage += i;
            memmove(dbuf, dbuf + i, dlen - i);
            dlen = (uint16_t)(dlen - i);
            continue;
        }
        if (dlen < 2)
            return;
        len = dbuf[1];
        if (len > WP_MAX_PAYLOAD) {
            st_bad++;
            d_bad = true;
            drop_first();
            continue;
        }
        total = (uint16_t)(len + 7);
        if (dlen < total)
            return;
        if (wp_crc16(dbuf + 1, (uint16_t)(len + 4)) !=
                (uint16_t)((dbuf[5 + len] << 8) | dbuf[6 + len]) ||
            (dbuf[4] & ~(WP_FLAG_SYN | WP_FLAG_NAK))) {
            st_bad++;
            d_bad = true;
            drop_first();
            continue;
        }
        st_frames++;
        on_frame(dbuf, now);
        memmove(dbuf, dbuf + total, dlen - total);
        dlen = (uint16_t)(dlen - total);
    }
}

uint16_t wp_rx(const uint8_t *data, uint16_t len, uint64_t now)
{
    uint16_t i;
    d_bad = false;
    if (dlen && now - d_last > 50 * (uint64_t)ticks_per_ms) { /* stale candidate */
        st_bad++;
        d_bad = true;
        drop_first();
        st_garbage++;
        scan(now);
    }
    for (i = 0; i < len; i++) {
        dbuf[dlen++] = data[i];
        scan(now);
    }
    d_last = now;
    if (d_bad)
        request_nak(now);
    flush(now);
    return len;
}

/* ------------------------------------------------------------------------------------------ */
void wp_input_init(uint32_t bits) { inputs_bits = bits; }

void wp_input(uint8_t pin, uint8_t value, uint64_t clock, int64_t count)
{
    uint32_t bit = (uint32_t)1 << pin, old = inputs_bits & bit;
    msg_t m;
    if (pin >= B->inputs)
        return;
    if (value)
        inputs_bits |= bit;
    else
        inputs_bits &= ~bit;
    if (!old == !value)
        return;
    m.n = 0;
    put8(&m, M_INPUT_EDGE);
    put8(&m, pin);
    put8(&m, value ? 1 : 0);
    put64(&m, clock);
    put64(&m, (uint64_t)count);
    send_event(&m);
}

static void trip_watchdog(uint64_t now)
{
    uint8_t pin;
    msg_t m;
    uint64_t silent = now > last_host_frame ? now - last_host_frame : 0;
    wd_state = WD_TRIPPED;
    cancel_all_actions();
#if WP_TRACE
    hal_trace_watchdog(now, last_host_frame);
#endif
    for (pin = 0; pin < B->outputs; pin++) /* configured outputs only (8.1) */
        if ((configured_bits >> pin) & 1)
            set_output(pin, (uint8_t)((safe_bits >> pin) & 1), WP_CAUSE_WATCHDOG, now);
    for (pin = 0; pin < WP_MAX_ENCODERS; pin++)
        report_every[pin] = 0;
    m.n = 0;
    put8(&m, M_WATCHDOG_TRIPPED);
    put64(&m, now);
    put32(&m, (uint32_t)(silent / ticks_per_ms));
    send_event(&m);
}

void wp_poll(uint64_t now)
{
    uint8_t e;
    wp_fire_due(now);
    drain_fired();
    if (pend_active)
        run_pending(now);
    if (!pend_active && dlen)
        scan(now);
    if (wd_state == WD_ARMED && now - last_host_frame >= (uint64_t)watchdog_ms * ticks_per_ms)
        trip_watchdog(now);
    report_drops();
    for (e = 0; e < B->encoders && e < WP_MAX_ENCODERS; e++) {
        if (report_every[e] && now >= report_at[e]) {
            msg_t m;
            report_at[e] += report_every[e];
            if (report_at[e] <= now)
                report_at[e] = now + report_every[e];
            m.n = 0;
            put8(&m, M_ENCODER_REPORT);
            put8(&m, e);
            put64(&m, (uint64_t)hal_encoder_count(e));
            put64(&m, now);
            send_event(&m);
        }
    }
    flush(now);
    if (reset_pending && now >= reset_at) {
        reset_pending = false;
        hal_reset(WP_START_RESET_COMMAND);
    }
}

uint64_t wp_poll_deadline(void)
{
    uint64_t d = UINT64_MAX, t;
    uint8_t e;
    if (tx_count) {
        t = txw[tx_head].sent_at + rto;
        if (t < d)
            d = t;
    }
    if (wd_state == WD_ARMED) {
        t = last_host_frame + (uint64_t)watchdog_ms * ticks_per_ms;
        if (t < d)
            d = t;
    }
    for (e = 0; e < B->encoders && e < WP_MAX_ENCODERS; e++)
        if (report_every[e] && report_at[e] < d)
            d = report_at[e];
    if (reset_pending && reset_at < d)
        d = reset_at;
    if (dlen && d_last + 51 * (uint64_t)ticks_per_ms < d)
        d = d_last + 51 * (uint64_t)ticks_per_ms;
    return d;
}

uint32_t wp_outputs(void) { return outputs_bits; }
uint32_t wp_inputs(void) { return inputs_bits; }
uint32_t wp_safe_values(void) { return safe_bits; }

void wp_stats(uint32_t out[6])
{
    out[0] = st_frames;
    out[1] = st_bad;
    out[2] = st_naks;
    out[3] = st_retx;
    out[4] = st_dups;
    out[5] = st_garbage;
}

void wp_init(const wp_board *board, uint8_t reason)
{
    uint8_t s;
    msg_t m;
    B = board;
    ticks_per_ms = board->clock_freq / 1000;
    { /* RTO bounds from the baud rate (3.1): three maximum frames plus 20 ms */
        uint32_t t_frame = board->baud ? (uint32_t)((uint64_t)2550 * board->clock_freq /
                                                    board->baud) : 0,
                 two_naks = board->baud ? (uint32_t)((uint64_t)140 * board->clock_freq /
                                                     board->baud) : 0;
        rto_min = 3 * t_frame + 20 * ticks_per_ms;
        if (rto_min < 40 * ticks_per_ms)
            rto_min = 40 * ticks_per_ms;
        rto_max = 4 * rto_min > 500 * ticks_per_ms ? 4 * rto_min : 500 * ticks_per_ms;
        rto_init = rto_min > 100 * ticks_per_ms ? rto_min : 100 * ticks_per_ms;
        /* unsynchronised NAKs: at most once per two NAK frames' wire time, >= 5 ms (3.2) */
        unak_every = two_naks > 5 * ticks_per_ms ? two_naks : 5 * ticks_per_ms;
    }
    dlen = 0;
    st_frames = st_bad = st_naks = st_retx = st_dups = st_garbage = 0;
    rx_synced = ack_owed = nak_owed = nak_sent_valid = last_syn_valid = false;
    pend_active = false;
    s = hal_irq_save();
    memset(actions, 0, sizeof actions);
    fired_head = fired_count = 0;
    rearm();
    hal_irq_restore(s);
    /* outputs are not driven here: after a reset a real pin is high-impedance and the
     * board's pull resistor holds the safe level until config_output (section 8.4) */
    outputs_bits = safe_bits = inputs_bits = 0;
    watchdog_ms = 0;
    wd_state = WD_OFF;
    last_host_frame = 0;
    configured_bits = 0;
    unak_sent = unak_owed = resend_syn_now = false;
    drop_reports = drop_edges = drop_done = drop_faults = 0;
    memset(report_every, 0, sizeof report_every);
    reset_pending = false;
    held_head = held_count = held_dropped = 0;
    events_dropped = 0;
    /* the largest answer one command can need: identify_response */
    resp_reserve = (uint16_t)(1 + 17 + 40 + 20 + sizeof COMMANDS);
    if (resp_reserve < 6 + WP_ERRMSG_MAX)
        resp_reserve = 6 + WP_ERRMSG_MAX;
    tx_restart();
    m.n = 0;
    put8(&m, M_STARTED);
    put8(&m, reason);
    put64(&m, hal_clock());
    send_msg(&m);
}
