/* CRC-16/CCITT-FALSE and the frame encoder of docs/mcu-protocol.md section 2. */
#include "wp.h"

/* Byte-wise CRC-CCITT (poly 0x1021, not reflected) without a table: 8-bit MCUs keep their
 * flash, and it is as fast as a table lookup there. Check value of "123456789": 0x29B1. */
static uint16_t crc_update(uint16_t crc, uint8_t b)
{
    uint8_t x = (uint8_t)((crc >> 8) ^ b);
    x ^= (uint8_t)(x >> 4);
    return (uint16_t)((crc << 8) ^ ((uint16_t)x << 12) ^ ((uint16_t)x << 5) ^ x);
}

uint16_t wp_crc16(const uint8_t *data, uint16_t len)
{
    uint16_t crc = 0xFFFF;
    while (len--)
        crc = crc_update(crc, *data++);
    return crc;
}

uint16_t wp_frame_encode(uint8_t *out, uint8_t seq, uint8_t ack, uint8_t flags,
                         const uint8_t *payload, uint8_t len)
{
    uint16_t i, crc;
    out[0] = WP_SYNC;
    out[1] = len;
    out[2] = len ? seq : 0;
    out[3] = ack;
    out[4] = flags;
    for (i = 0; i < len; i++)
        out[5 + i] = payload[i];
    crc = wp_crc16(out + 1, (uint16_t)(len + 4));
    out[5 + len] = (uint8_t)(crc >> 8);
    out[6 + len] = (uint8_t)crc;
    return (uint16_t)(len + 7);
}
