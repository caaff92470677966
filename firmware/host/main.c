/* Linux host HAL: the firmware core as a process on a pty, like Klipper's host MCU.
 *
 * It plays the part `wolfpack sim mcu` plays for the Python firmware, with the same options:
 * a pty behind a stable symlink (--link), the wire time of --baud, byte noise and drops, line
 * stalls, unplug/replug and resets, a simulated belt encoder. With --control it reads world
 * commands on stdin (inputs, belt motion, faults) and reports output changes on stdout; with
 * --trace FILE it logs what it executed, so tests can check the inside as they do with the
 * Python firmware. See docs/firmware.md, "Host build".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../core/wp.h"

#ifndef WP_VERSION
#define WP_VERSION "1.0.0"
#endif

static const char *const CAUSES[] = {"command", "action", "watchdog", "reset", "config"};
static const char *const KINDS[] = {"free", "clock", "count", "revert"};

/* ---- options ---------------------------------------------------------------------------- */
static const char *link_path;
static long baud;
static double noise, drop_rate, drift_ppm = 40.0, belt_speed = 500.0, counts_per_mm = 1.0;
static double stall_every, stall_for = 0.2, unplug_every, unplug_for = 0.5, reset_every;
static unsigned long long seed;
static int control, realtime;
static FILE *trace;
static wp_board board = {1000000, 8, 8, 1, WP_PROTOCOL, 0, "wolfpack-mcu", WP_VERSION};
static long watchdog_ms_opt = 500; /* accepted like the Python sim's; set_watchdog arms it */

/* ---- time and clock ----------------------------------------------------------------------- */
static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double boot_t, tick_rate;
uint64_t hal_clock(void)
{
    double d = (mono() - boot_t) * tick_rate;
    return d > 0 ? (uint64_t)d : 0;
}
static uint64_t clock_at(double t) { return t > boot_t ? (uint64_t)((t - boot_t) * tick_rate) : 0; }
static double time_of_clock(uint64_t c) { return boot_t + (double)c / tick_rate; }

/* ---- the simulated belt encoder ----------------------------------------------------------- */
static double enc_t, enc_pos, enc_rate; /* count(t) = enc_pos + enc_rate * (t - enc_t) */
static int64_t enc_last = INT64_MIN;
/* the count at time t (an input edge latched in the past) */
static int64_t count_at(double t) { return (int64_t)floor(enc_pos + enc_rate * (t - enc_t)); }

int64_t hal_encoder_count(uint8_t encoder)
{
    int64_t c = count_at(mono());
    (void)encoder;
    if (c < enc_last) /* the count now never goes back when a world update lands slightly short */
        c = enc_last;
    enc_last = c;
    return c;
}
static double count_eta(int64_t count, double now)
{
    double pos = enc_pos + enc_rate * (now - enc_t);
    if (pos >= (double)count)
        return now;
    if (enc_rate <= 0)
        return INFINITY;
    return enc_t + ((double)count - enc_pos) / enc_rate;
}

/* ---- timers the core arms ----------------------------------------------------------------- */
static uint64_t timer_target = UINT64_MAX;
static int64_t enc_target;
static int enc_armed;
void hal_timer_arm(uint64_t clock) { timer_target = clock; }
void hal_encoder_arm(uint8_t encoder, int64_t count, bool armed)
{
    (void)encoder;
    enc_target = count;
    enc_armed = armed;
}
uint8_t hal_irq_save(void) { return 0; }
void hal_irq_restore(uint8_t state) { (void)state; }

/* ---- faults ------------------------------------------------------------------------------- */
static unsigned long long rng_state;
static double rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}
typedef struct {
    double corrupt, drop;
    long to_corrupt, to_drop;
    unsigned long corrupted, dropped;
} faults_t;
static faults_t f_to_host, f_from_host;
static long gap(double rate)
{
    if (rate <= 0)
        return -1;
    if (rate >= 1)
        return 0;
    return (long)(log(1.0 - rng()) / log(1.0 - rate));
}
static void faults_set(faults_t *f, double corrupt, double drop)
{
    f->corrupt = corrupt;
    f->drop = drop;
    f->to_corrupt = gap(corrupt);
    f->to_drop = gap(drop);
}
/* corrupt and drop bytes in place; returns the new length */
static size_t faults_apply(faults_t *f, uint8_t *buf, size_t n)
{
    size_t i, out = 0;
    for (i = 0; i < n; i++) {
        uint8_t b = buf[i];
        if (f->corrupt > 0) {
            if (f->to_corrupt < 0)
                f->to_corrupt = gap(f->corrupt);
            if (f->to_corrupt == 0) {
                b ^= (uint8_t)(1 + (int)(rng() * 255));
                f->corrupted++;
                f->to_corrupt = gap(f->corrupt);
            } else {
                f->to_corrupt--;
            }
        }
        if (f->drop > 0) {
            if (f->to_drop < 0)
                f->to_drop = gap(f->drop);
            if (f->to_drop == 0) {
                f->dropped++;
                f->to_drop = gap(f->drop);
                continue;
            }
            f->to_drop--;
        }
        buf[out++] = b;
    }
    return out;
}

/* ---- the wire: paced byte chunks in each direction ----------------------------------------- */
#define CHUNK 512
#define NCHUNKS 512
typedef struct {
    double at;
    uint16_t len;
    uint8_t data[CHUNK];
} chunk_t;
typedef struct {
    chunk_t c[NCHUNKS];
    unsigned head, count;
    double line_free;
} lane_t;
static lane_t to_mcu, to_host;
static double stall_until;
static int master = -1, slave_keep = -1, plugged;
static char slave_name[128];
static unsigned long unplugs, stalls;
static uint8_t outbuf[1 << 16];
static size_t outlen;

static double byte_time(void) { return baud ? 10.0 / (double)baud : 0.0; }

static void lane_push(lane_t *l, const uint8_t *data, size_t n)
{
    double now = mono(), start = now;
    size_t step = baud ? (size_t)(baud / 10 * 0.002) : CHUNK, i;
    if (step < 16)
        step = 16;
    if (step > CHUNK)
        step = CHUNK;
    if (l->line_free > start)
        start = l->line_free;
    if (stall_until > start)
        start = stall_until;
    for (i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        chunk_t *c;
        if (l->count == NCHUNKS)
            return; /* the line is saturated for seconds: it loses the bytes */
        c = &l->c[(l->head + l->count++) % NCHUNKS];
        start += (double)k * byte_time();
        c->at = start;
        c->len = (uint16_t)k;
        memcpy(c->data, data + i, k);
    }
    l->line_free = start;
}

static void write_host(const uint8_t *data, size_t n)
{
    ssize_t w = 0;
    if (!plugged)
        return;
    if (!outlen) {
        w = write(master, data, n);
        if (w < 0)
            w = 0;
    }
    if ((size_t)w < n && outlen + (n - (size_t)w) <= sizeof outbuf) {
        memcpy(outbuf + outlen, data + w, n - (size_t)w);
        outlen += n - (size_t)w;
    }
}

uint16_t hal_tx_space(void) { return (uint16_t)((NCHUNKS - to_host.count) > 8 ? 60000 : 0); }

void hal_tx(const uint8_t *data, uint16_t len)
{
    uint8_t buf[512];
    size_t n;
    if (!plugged || len > sizeof buf)
        return;
    memcpy(buf, data, len);
    n = faults_apply(&f_to_host, buf, len);
    if (!baud && mono() >= stall_until && !to_host.count)
        write_host(buf, n);
    else
        lane_push(&to_host, buf, n);
}

static void plug(void)
{
    char tmp[4200];
    struct termios tio;
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        perror("wolfpack-mcu-host: pty");
        exit(1);
    }
    snprintf(slave_name, sizeof slave_name, "%s", ptsname(master));
    slave_keep = open(slave_name, O_RDWR | O_NOCTTY);
    tcgetattr(master, &tio);
    cfmakeraw(&tio);
    tcsetattr(master, TCSANOW, &tio);
    if (slave_keep >= 0) {
        tcgetattr(slave_keep, &tio);
        cfmakeraw(&tio);
        tcsetattr(slave_keep, TCSANOW, &tio);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", link_path, (int)getpid());
    unlink(tmp);
    if (symlink(slave_name, tmp) || rename(tmp, link_path)) {
        fprintf(stderr, "wolfpack-mcu-host: %s: cannot create the link: %s\n", link_path,
                strerror(errno));
        exit(1);
    }
    to_host.count = to_mcu.count = 0;
    to_host.line_free = to_mcu.line_free = mono();
    outlen = 0;
    plugged = 1;
}

static void unplug(void)
{
    char target[256];
    ssize_t n;
    if (!plugged)
        return;
    plugged = 0;
    unplugs++;
    n = readlink(link_path, target, sizeof target - 1);
    if (n > 0) {
        target[n] = 0;
        if (!strcmp(target, slave_name))
            unlink(link_path);
    }
    close(master);
    if (slave_keep >= 0)
        close(slave_keep);
    master = slave_keep = -1;
    to_host.count = to_mcu.count = 0;
    outlen = 0;
    if (trace)
        fprintf(trace, "unplug %.6f\n", mono());
}

/* ---- outputs and trace hooks --------------------------------------------------------------- */
static uint8_t out_state[WP_MAX_OUTPUTS];
void hal_output(uint8_t pin, uint8_t value)
{
    if (pin < WP_MAX_OUTPUTS)
        out_state[pin] = value;
}

void hal_trace_command(uint64_t clock, const uint8_t *msg, uint8_t len)
{
    uint8_t i;
    if (!trace)
        return;
    fprintf(trace, "cmd %.6f ", time_of_clock(clock));
    for (i = 0; i < len; i++)
        fprintf(trace, "%02x", msg[i]);
    fputc('\n', trace);
}

static void report_output(double t, uint8_t pin, uint8_t value, uint8_t cause)
{
    if (trace)
        fprintf(trace, "out %.6f %u %u %s\n", t, pin, value, CAUSES[cause]);
    if (control) {
        printf("out %.6f %u %u %s\n", t, pin, value, CAUSES[cause]);
        fflush(stdout);
    }
}

void hal_trace_output(uint64_t clock, uint8_t pin, uint8_t value, uint8_t cause)
{
    report_output(time_of_clock(clock), pin, value, cause);
}

void hal_trace_action(uint16_t action, uint8_t pin, uint8_t value, uint8_t kind, uint64_t target,
                      uint64_t clock, int64_t count)
{
    if (trace)
        fprintf(trace, "act %u %u %u %s %lld %llu %lld %.6f\n", action, pin, value, KINDS[kind],
                kind == 2 ? (long long)(int64_t)target : (long long)target,
                (unsigned long long)clock, (long long)count, time_of_clock(clock));
}

void hal_trace_watchdog(uint64_t clock, uint64_t last_frame_clock)
{
    if (trace)
        fprintf(trace, "wd %.6f %.6f\n", time_of_clock(clock), time_of_clock(last_frame_clock));
}

void hal_trace_held(uint16_t sent, uint16_t dropped)
{
    if (trace)
        fprintf(trace, "held %u %u\n", sent, dropped);
}

void hal_reset(uint8_t reason)
{
    double now = mono();
    uint8_t pin;
    for (pin = 0; pin < board.outputs; pin++)
        if (out_state[pin]) {
            out_state[pin] = 0;
            report_output(now, pin, 0, WP_CAUSE_RESET);
        }
    boot_t = now;
    enc_last = INT64_MIN;
    wp_init(&board, reason);
}

/* ---- control channel (stdin) --------------------------------------------------------------- */
static double replug_at = INFINITY;
static char ctl_buf[4096];
static size_t ctl_len;
static volatile sig_atomic_t stopping;

static void control_line(char *line)
{
    double a = 0, b = 0, c = 0;
    int pin, value;
    double now = mono();
    int n = sscanf(line, "input %d %d %lf", &pin, &value, &a);
    if (n >= 2) {
        double t = n == 3 ? a : now;
        if (t > now)
            t = now;
        if (pin >= 0 && pin < board.inputs)
            wp_input((uint8_t)pin, (uint8_t)value, clock_at(t), count_at(t));
    } else if (sscanf(line, "belt %lf %lf %lf", &a, &b, &c) == 3) {
        enc_t = a;
        enc_pos = b;
        enc_rate = c;
    } else if (sscanf(line, "speed %lf", &a) == 1) {
        enc_pos = enc_pos + enc_rate * (now - enc_t);
        enc_t = now;
        enc_rate = a * counts_per_mm;
    } else if (sscanf(line, "noise %lf %lf", &a, &b) >= 1) {
        int has_drop = sscanf(line, "noise %lf %lf", &a, &b) == 2;
        faults_set(&f_to_host, a, has_drop ? b : f_to_host.drop);
        faults_set(&f_from_host, a, has_drop ? b : f_from_host.drop);
    } else if (sscanf(line, "unplug %lf", &a) == 1) {
        unplug();
        replug_at = a >= 0 ? now + a : INFINITY;
    } else if (!strcmp(line, "unplug")) {
        unplug();
        replug_at = INFINITY;
    } else if (!strcmp(line, "replug")) {
        if (!plugged)
            plug();
        replug_at = INFINITY;
    } else if (sscanf(line, "stall %lf", &a) == 1) {
        stalls++;
        if (now + a > stall_until)
            stall_until = now + a;
    } else if (!strcmp(line, "reset")) {
        hal_reset(WP_START_SIMULATED);
    } else if (!strncmp(line, "sync", 4)) {
        uint32_t s[6];
        wp_stats(s);
        if (trace)
            fflush(trace);
        printf("stats {\"unplugs\": %lu, \"stalls\": %lu, \"dropped_from_host\": %lu, "
               "\"dropped_to_host\": %lu, \"corrupted_from_host\": %lu, "
               "\"corrupted_to_host\": %lu, \"outputs\": %u, \"inputs\": %u, \"safe\": %u, "
               "\"rx_frames\": %u, "
               "\"rx_bad\": %u, \"clock\": %llu, \"count\": %lld, \"now\": %.6f}\n",
               unplugs, stalls, f_from_host.dropped, f_to_host.dropped, f_from_host.corrupted,
               f_to_host.corrupted, wp_outputs(), wp_inputs(), wp_safe_values(), s[0], s[1],
               (unsigned long long)hal_clock(), (long long)count_at(now), now);
        printf("%s\n", line);
        fflush(stdout);
    } else if (!strcmp(line, "quit")) {
        stopping = 1;
    } else if (line[0]) {
        printf("error unknown control line: %s\n", line);
        fflush(stdout);
    }
}

static void read_control(void)
{
    ssize_t n = read(0, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
    char *nl;
    if (n <= 0) {
        stopping = 1; /* whoever drives us is gone */
        return;
    }
    ctl_len += (size_t)n;
    while ((nl = memchr(ctl_buf, '\n', ctl_len))) {
        *nl = 0;
        control_line(ctl_buf);
        ctl_len -= (size_t)(nl + 1 - ctl_buf);
        memmove(ctl_buf, nl + 1, ctl_len);
    }
    if (ctl_len == sizeof ctl_buf - 1)
        ctl_len = 0;
}

/* ---- main loop ---------------------------------------------------------------------------- */
static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: wolfpack-mcu-host --link PATH [--baud N] [--noise R] [--drop R] [--seed N]\n"
            "  [--watchdog-ms N] [--belt-speed MM_S] [--counts-per-mm X] [--drift-ppm P]\n"
            "  [--outputs N] [--inputs N] [--protocol N] [--stall-every S] [--stall-for S]\n"
            "  [--unplug-every S] [--unplug-for S] [--reset-every S] [--realtime]\n"
            "  [--control] [--trace FILE]\n");
}

static int parse_args(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        double d = 0;
        if (!strcmp(o, "--control")) {
            control = 1;
            continue;
        }
        if (!strcmp(o, "--realtime")) {
            realtime = 1;
            continue;
        }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "wolfpack-mcu-host: %s needs a value\n", o);
            return -1;
        }
        i++;
        if (!strcmp(o, "--link")) {
            link_path = v;
            continue;
        }
        if (!strcmp(o, "--trace")) {
            trace = fopen(v, "w");
            if (!trace) {
                fprintf(stderr, "wolfpack-mcu-host: --trace %s: %s\n", v, strerror(errno));
                return -1;
            }
            continue;
        }
        d = strtod(v, &end);
        if (!end || *end) {
            fprintf(stderr, "wolfpack-mcu-host: %s %s: not a number\n", o, v);
            return -1;
        }
        if (!strcmp(o, "--baud"))
            baud = (long)d;
        else if (!strcmp(o, "--noise"))
            noise = d;
        else if (!strcmp(o, "--drop"))
            drop_rate = d;
        else if (!strcmp(o, "--seed"))
            seed = (unsigned long long)d;
        else if (!strcmp(o, "--watchdog-ms"))
            watchdog_ms_opt = (long)d;
        else if (!strcmp(o, "--belt-speed"))
            belt_speed = d;
        else if (!strcmp(o, "--counts-per-mm"))
            counts_per_mm = d;
        else if (!strcmp(o, "--drift-ppm"))
            drift_ppm = d;
        else if (!strcmp(o, "--outputs") && d >= 1 && d <= WP_MAX_OUTPUTS)
            board.outputs = (uint8_t)d;
        else if (!strcmp(o, "--inputs") && d >= 1 && d <= 32)
            board.inputs = (uint8_t)d;
        else if (!strcmp(o, "--protocol"))
            board.protocol = (uint16_t)d;
        else if (!strcmp(o, "--stall-every"))
            stall_every = d;
        else if (!strcmp(o, "--stall-for"))
            stall_for = d;
        else if (!strcmp(o, "--unplug-every"))
            unplug_every = d;
        else if (!strcmp(o, "--unplug-for"))
            unplug_for = d;
        else if (!strcmp(o, "--reset-every"))
            reset_every = d;
        else {
            fprintf(stderr, "wolfpack-mcu-host: unknown option or value out of range: %s %s\n",
                    o, v);
            return -1;
        }
    }
    if (!link_path) {
        fprintf(stderr, "wolfpack-mcu-host: --link PATH is required\n");
        return -1;
    }
    if (noise < 0 || noise >= 1 || drop_rate < 0 || drop_rate >= 1) {
        fprintf(stderr, "wolfpack-mcu-host: --noise and --drop must be in [0, 1)\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double next_stall, next_unplug, next_reset;
    struct sigaction sa;
    if (parse_args(argc, argv)) {
        usage();
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* wake within ~1 us of the deadline, not 50 us */
    if (realtime) {
        struct sched_param sp = {.sched_priority = 10};
        if (sched_setscheduler(0, SCHED_FIFO, &sp))
            fprintf(stderr, "wolfpack-mcu-host: real-time scheduling not permitted; running "
                            "without\n");
    }
    rng_state = seed ? seed * 0x9E3779B97F4A7C15ULL : (unsigned long long)(mono() * 1e9) | 1;
    faults_set(&f_to_host, noise, drop_rate);
    faults_set(&f_from_host, noise, drop_rate);
    board.baud = (uint32_t)baud;
    tick_rate = board.clock_freq * (1.0 + drift_ppm * 1e-6);
    boot_t = mono();
    enc_t = boot_t;
    enc_pos = 0;
    enc_rate = belt_speed * counts_per_mm;
    plug();
    wp_init(&board, WP_START_POWER_ON);
    printf("simulated MCU (C firmware %s %s) on %s -> %s: %s; noise %g, drop %g per byte; "
           "watchdog %ld ms (armed by set_watchdog); belt %g mm/s x %g counts/mm; clock %u Hz (%+g ppm)\n",
           board.firmware, board.version, link_path, slave_name,
           baud ? "baud modelled" : "no wire-time model", noise, drop_rate, watchdog_ms_opt,
           belt_speed, counts_per_mm, board.clock_freq, drift_ppm);
    fflush(stdout);
    next_stall = stall_every > 0 ? mono() + stall_every : INFINITY;
    next_unplug = unplug_every > 0 ? mono() + unplug_every : INFINITY;
    next_reset = reset_every > 0 ? mono() + reset_every : INFINITY;

    while (!stopping) {
        struct pollfd fds[2];
        int nfds = 0, i_master = -1, i_ctl = -1;
        double now = mono(), wake = now + 0.001, t;
        struct timespec ts;
        /* the next thing due */
        if (timer_target != UINT64_MAX && (t = time_of_clock(timer_target)) < wake)
            wake = t;
        if (enc_armed && (t = count_eta(enc_target, now)) < wake)
            wake = t;
        if (to_mcu.count && to_mcu.c[to_mcu.head].at < wake)
            wake = to_mcu.c[to_mcu.head].at;
        if (to_host.count && to_host.c[to_host.head].at < wake)
            wake = to_host.c[to_host.head].at;
        if (replug_at < wake)
            wake = replug_at;
        if (wake - now < 0.0002) { /* spin the last 200 us, as a timer compare would be exact */
            while (mono() < wake)
                ;
            wake = mono();
        }
        if (plugged) {
            fds[nfds].fd = master;
            fds[nfds].events = POLLIN | (outlen ? POLLOUT : 0);
            i_master = nfds++;
        }
        if (control) {
            fds[nfds].fd = 0;
            fds[nfds].events = POLLIN;
            i_ctl = nfds++;
        }
        t = wake - mono();
        if (t < 0)
            t = 0;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        if (ppoll(fds, (nfds_t)nfds, &ts, NULL) < 0 && errno != EINTR)
            break;
        now = mono();
        if (i_master >= 0 && (fds[i_master].revents & POLLOUT) && outlen) {
            ssize_t w = write(master, outbuf, outlen);
            if (w > 0) {
                memmove(outbuf, outbuf + w, outlen - (size_t)w);
                outlen -= (size_t)w;
            }
        }
        if (i_master >= 0 && (fds[i_master].revents & POLLIN)) {
            uint8_t buf[4096];
            ssize_t n = read(master, buf, sizeof buf);
            if (n > 0) {
                size_t k = faults_apply(&f_from_host, buf, (size_t)n);
                if (!baud && now >= stall_until && !to_mcu.count)
                    wp_rx(buf, (uint16_t)k, hal_clock());
                else
                    lane_push(&to_mcu, buf, k);
            }
        }
        if (i_ctl >= 0 && (fds[i_ctl].revents & (POLLIN | POLLHUP)))
            read_control();
        now = mono();
        while (to_mcu.count && to_mcu.c[to_mcu.head].at <= now) {
            chunk_t *c = &to_mcu.c[to_mcu.head];
            to_mcu.head = (to_mcu.head + 1) % NCHUNKS;
            to_mcu.count--;
            if (plugged)
                wp_rx(c->data, c->len, hal_clock());
        }
        while (to_host.count && to_host.c[to_host.head].at <= now) {
            chunk_t *c = &to_host.c[to_host.head];
            to_host.head = (to_host.head + 1) % NCHUNKS;
            to_host.count--;
            write_host(c->data, c->len);
        }
        if (now >= replug_at) {
            replug_at = INFINITY;
            if (!plugged)
                plug();
        }
        if (now >= next_stall) {
            stalls++;
            stall_until = now + stall_for;
            next_stall += stall_every;
        }
        if (now >= next_unplug) {
            unplug();
            replug_at = now + unplug_for;
            next_unplug += unplug_every;
        }
        if (now >= next_reset) {
            hal_reset(WP_START_SIMULATED);
            next_reset += reset_every;
        }
        wp_poll(hal_clock());
    }
    unplug();
    unlink(link_path);
    if (trace)
        fclose(trace);
    printf("simulated MCU on %s stopped\n", link_path);
    fflush(stdout);
    return 0;
}
