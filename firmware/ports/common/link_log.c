/* Port diagnostics as LOG frames; see link_log.h for the contract. */
#include "link_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fedcore/device.h"
#include "fedcore/protocol.h"

static char line[LINK_LOG_LINE_MAX + 1];
static size_t line_len = 0;
static bool started = false;
static unsigned uart_depth = 0; /* > 0 while the port is inside fc_uart_write */
static bool sending = false;    /* a LOG frame is being built: nested text is dropped */
static uint32_t dropped = 0;

uint32_t link_log_dropped(void) { return dropped; }
void link_log_count_dropped(void) { dropped++; }
void link_log_uart_enter(void) { uart_depth++; }
void link_log_uart_leave(void) {
    if (uart_depth > 0) {
        uart_depth--;
    }
}

static bool can_send(void) { return started && uart_depth == 0 && !sending; }

/* ESP-IDF lines start with "E (", "W (", "I (", "D (" or "V (", maybe after an ANSI colour. */
static uint8_t level_of(const char *text) {
    if (text[0] == '\033') {
        const char *end = strchr(text, 'm');
        text = end ? end + 1 : text;
    }
    if (text[0] != '\0' && text[1] == ' ' && text[2] == '(') {
        switch (text[0]) {
        case 'E':
            return FC_LOG_ERROR;
        case 'W':
            return FC_LOG_WARN;
        case 'I':
            return FC_LOG_INFO;
        default:
            return FC_LOG_DEBUG;
        }
    }
    return FC_LOG_INFO;
}

/* Drop ANSI colour sequences and line ends: a LOG frame carries the bare text. */
static size_t clean(char *text, size_t len) {
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\033') {
            while (i < len && text[i] != 'm') {
                i++;
            }
            continue;
        }
        if (text[i] != '\r' && text[i] != '\n') {
            text[out++] = text[i];
        }
    }
    text[out] = '\0';
    return out;
}

static void send_line(uint8_t level, char *text, size_t len) {
    if (clean(text, len) == 0) {
        return; /* an empty line (or only colour codes): nothing to tell */
    }
    sending = true;
    fc_device_log(level, text);
    sending = false;
}

static void flush_line(void) {
    if (line_len == 0) {
        return;
    }
    line[line_len] = '\0';
    send_line(level_of(line), line, line_len);
    line_len = 0;
}

/* Append text; every '\n' (or a full buffer) ends a line. */
static void append(const char *text, size_t len) {
    for (size_t i = 0; i < len; i++) {
        line[line_len++] = text[i];
        if (text[i] == '\n' || line_len == LINK_LOG_LINE_MAX) {
            flush_line();
        }
    }
}

int link_log_vprintf(const char *fmt, va_list args) {
    char piece[LINK_LOG_CALL_MAX + 1];
    int n = vsnprintf(piece, sizeof piece, fmt, args);
    if (n <= 0) {
        return n;
    }
    if (!can_send()) {
        dropped++;
        return n;
    }
    size_t len = (size_t)n < sizeof piece ? (size_t)n : sizeof piece - 1u;
    append(piece, len);
    return n;
}

void link_log_text(uint8_t level, const char *text) {
    if (!can_send()) {
        dropped++;
        return;
    }
    char copy[LINK_LOG_LINE_MAX + 1];
    size_t len = strlen(text);
    len = len < LINK_LOG_LINE_MAX ? len : LINK_LOG_LINE_MAX;
    memcpy(copy, text, len);
    flush_line(); /* a pending partial line goes first, in order */
    send_line(level, copy, len);
}

void link_log_start(void) {
    started = true;
    line_len = 0; /* a partial line from before start was counted when it was dropped */
    if (dropped > 0) {
        char note[80];
        (void)snprintf(note, sizeof note,
                       "link_log: %u log texts dropped before the link was ready",
                       (unsigned)dropped);
        link_log_text(FC_LOG_WARN, note);
    }
}
