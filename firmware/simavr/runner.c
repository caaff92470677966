/* wolfpack-simavr: the ATmega2560 build in simavr, its UART0 on a pty, pins under control.
 *
 *   wolfpack-simavr --elf build/mega2560/wolfpack-mcu.elf --link PATH [--control]
 *
 * The simulated AVR runs in real time (throttled to the wall clock) so a host on the pty sees
 * a board. With --control, stdin takes lines that drive pins and stdout reports outputs:
 *   input PIN VALUE          drive PORTK pin PIN (photo-eye input PIN)
 *   encoder RATE EDGES [-1]  EDGES quadrature edges on D2/D3 at RATE edges/s (simulated
 *                            time), forward or backward
 *   sync                     answers 'stats {...}' (cycle, edges sent) then 'sync'
 *   out CYCLE PIN VALUE      (stdout) PORTA pin PIN changed at simulator cycle CYCLE
 * docs/firmware.md, "simavr".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <avr_ioport.h>
#include <parts/uart_pty.h>
#include <sim_avr.h>
#include <sim_elf.h>

static avr_t *avr;
static uart_pty_t uart;
static volatile sig_atomic_t stopping;
static int control;
static const char *link_path;
/* the cycle at which the firmware started Timer1 (its clock 0): the clock at cycle c is
 * (c - timer1_start) / 8, so tests can compare an output's cycle with its target clock */
#define TCCR1B_ADDR 0x81
static avr_cycle_count_t timer1_start;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- outputs: PORTA pins ---------------------------------------------------------------- */
static void on_output(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    if (control) {
        printf("out %llu %d %u\n", (unsigned long long)avr->cycle, (int)(intptr_t)param,
               value ? 1 : 0);
        fflush(stdout);
    }
}

/* ---- encoder: quadrature edges on PE4 (A) / PE5 (B) ------------------------------------- */
static const uint8_t QUAD[4] = {0, 1, 3, 2}; /* A rises, B rises, A falls, B falls */
static uint8_t quad_phase;
static long edges_left, edges_sent;
static int edge_dir = 1;
static avr_cycle_count_t edge_period;

static void quad_out(void)
{
    uint8_t ab = QUAD[quad_phase & 3];
    avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('E'), 4), ab & 1);
    avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('E'), 5), (ab >> 1) & 1);
}

static avr_cycle_count_t on_edge_timer(struct avr_t *a, avr_cycle_count_t when, void *param)
{
    (void)a;
    (void)param;
    if (edges_left <= 0)
        return 0;
    quad_phase = (uint8_t)(quad_phase + (edge_dir > 0 ? 1 : 3));
    quad_out();
    edges_left--;
    edges_sent++;
    return edges_left > 0 ? when + edge_period : 0;
}

/* ---- control lines ---------------------------------------------------------------------- */
static char ctl[4096];
static size_t ctl_len;

static void control_line(char *line)
{
    int pin, value, dir = 1;
    double rate;
    long n;
    if (sscanf(line, "input %d %d", &pin, &value) == 2 && pin >= 0 && pin < 8) {
        avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('K'), pin), value ? 1 : 0);
    } else if (sscanf(line, "encoder %lf %ld %d", &rate, &n, &dir) >= 2 && rate > 0) {
        edge_dir = dir < 0 ? -1 : 1;
        edges_left = n;
        edge_period = (avr_cycle_count_t)(avr->frequency / rate);
        if (edge_period < 1)
            edge_period = 1;
        avr_cycle_timer_register(avr, edge_period, on_edge_timer, NULL);
    } else if (!strncmp(line, "sync", 4)) {
        printf("stats {\"cycle\": %llu, \"frequency\": %u, \"timer1_start\": %llu, "
               "\"edges_sent\": %ld, \"edges_left\": %ld}\n%s\n",
               (unsigned long long)avr->cycle, avr->frequency,
               (unsigned long long)timer1_start, edges_sent, edges_left, line);
        fflush(stdout);
    } else if (!strcmp(line, "quit")) {
        stopping = 1;
    } else if (line[0]) {
        printf("error unknown control line: %s\n", line);
        fflush(stdout);
    }
}

static void poll_control(void)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};
    char *nl;
    ssize_t n;
    if (poll(&p, 1, 0) <= 0)
        return;
    n = read(0, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
    if (n <= 0) {
        stopping = 1;
        return;
    }
    ctl_len += (size_t)n;
    while ((nl = memchr(ctl, '\n', ctl_len))) {
        *nl = 0;
        control_line(ctl);
        ctl_len -= (size_t)(nl + 1 - ctl);
        memmove(ctl, nl + 1, ctl_len);
    }
    if (ctl_len == sizeof ctl - 1)
        ctl_len = 0;
}

int main(int argc, char **argv)
{
    const char *elf = NULL;
    elf_firmware_t fw;
    char tmp[4200];
    double t0;
    unsigned long loops = 0;
    int i, state = cpu_Running;
    struct sigaction sa;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--elf") && i + 1 < argc)
            elf = argv[++i];
        else if (!strcmp(argv[i], "--link") && i + 1 < argc)
            link_path = argv[++i];
        else if (!strcmp(argv[i], "--control"))
            control = 1;
        else {
            fprintf(stderr, "usage: wolfpack-simavr --elf FILE.elf --link PATH [--control]\n");
            return 2;
        }
    }
    if (!elf || !link_path) {
        fprintf(stderr, "usage: wolfpack-simavr --elf FILE.elf --link PATH [--control]\n");
        return 2;
    }
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(elf, &fw)) {
        fprintf(stderr, "wolfpack-simavr: %s: cannot read the firmware\n", elf);
        return 1;
    }
    if (!fw.mmcu[0])
        strcpy(fw.mmcu, "atmega2560");
    if (!fw.frequency)
        fw.frequency = 16000000;
    avr = avr_make_mcu_by_name(fw.mmcu);
    if (!avr) {
        fprintf(stderr, "wolfpack-simavr: simavr does not know the MCU %s\n", fw.mmcu);
        return 1;
    }
    avr_init(avr);
    avr_load_firmware(avr, &fw);
    avr->log = LOG_ERROR;

    uart_pty_init(avr, &uart);
    uart_pty_connect(&uart, '0');
    snprintf(tmp, sizeof tmp, "%s.tmp%d", link_path, (int)getpid());
    unlink(tmp);
    if (symlink(uart.pty.slavename, tmp) || rename(tmp, link_path)) {
        fprintf(stderr, "wolfpack-simavr: %s: cannot create the link: %s\n", link_path,
                strerror(errno));
        return 1;
    }
    for (i = 0; i < 8; i++)
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('A'), i), on_output,
                                (void *)(intptr_t)i);
    /* idle levels: encoder A/B low, inputs high (pull-ups, beams clear) */
    quad_out();
    for (i = 0; i < 8; i++)
        avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('K'), i), 1);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("simulated ATmega2560 (simavr, %u Hz) running %s on %s -> %s\n", fw.frequency, elf,
           link_path, uart.pty.slavename);
    fflush(stdout);

    t0 = mono();
    while (!stopping && state != cpu_Done && state != cpu_Crashed) {
        state = avr_run(avr);
        if (!avr->data[TCCR1B_ADDR])
            timer1_start = 0; /* (again) before the firmware started its clock: a reset */
        else if (!timer1_start)
            timer1_start = avr->cycle;
        if (++loops % 2048)
            continue;
        /* real time: never run ahead of the wall clock */
        {
            double sim_t = (double)avr->cycle / avr->frequency, ahead = sim_t - (mono() - t0);
            if (ahead > 0.0005) {
                struct timespec ts = {0, (long)(ahead * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        if (control && !(loops % 16384))
            poll_control();
    }
    unlink(link_path);
    /* not uart_pty_stop(): it signals its thread with SIGINT, which our handler catches, and
     * then waits for it forever; the process's exit closes the pty */
    if (state == cpu_Crashed) {
        fprintf(stderr, "wolfpack-simavr: the simulated MCU crashed at pc 0x%x\n", avr->pc);
        return 1;
    }
    printf("simulated ATmega2560 on %s stopped\n", link_path);
    fflush(stdout);
    return 0;
}
