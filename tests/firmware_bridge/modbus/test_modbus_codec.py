"""Every data type in every byte/word order round-trips; known vectors pin the orders."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.modbus.codec import CodecError, Encoding, decode, encode
from firmware_bridge.modbus.datatypes import DataType, Order

ORDERS = list(Order)
INT_TYPES = [t for t in DataType if t.is_integer]
register = st.integers(0, 0xFFFF)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", [*INT_TYPES, DataType.FLOAT32, DataType.FLOAT64])
@given(data=st.data())
def test_registers_round_trip_through_decode_and_encode(dtype, order, data):
    enc = Encoding(dtype, order)
    regs = data.draw(st.lists(register, min_size=enc.count, max_size=enc.count))
    value = decode(enc, regs)
    if dtype.is_float and math.isnan(value):
        # NaN payload bits may be canonicalised by float(); it must still decode as NaN.
        assert math.isnan(decode(enc, encode(enc, value)))
        return
    assert encode(enc, value) == regs


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", INT_TYPES)
@given(data=st.data())
def test_integers_round_trip_exactly(dtype, order, data):
    low, high = dtype.integer_range()
    value = data.draw(st.integers(low, high))
    enc = Encoding(dtype, order)
    back = decode(enc, encode(enc, value))
    assert back == value and isinstance(back, int)


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=False, width=32))
def test_float32_round_trips(order, value):
    enc = Encoding(DataType.FLOAT32, order)
    assert decode(enc, encode(enc, value)) == value


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(allow_nan=False))
def test_float64_round_trips(order, value):
    enc = Encoding(DataType.FLOAT64, order)
    assert decode(enc, encode(enc, value)) == value


@pytest.mark.parametrize("order", ORDERS)
@given(length=st.integers(1, 20), data=st.data())
def test_strings_round_trip(order, length, data):
    text = data.draw(
        st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=2 * length)
    )
    enc = Encoding(DataType.STRING, order, length=length)
    regs = encode(enc, text)
    assert len(regs) == length
    assert decode(enc, regs) == text


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", INT_TYPES)
@given(data=st.data())
def test_scaled_integers_round_trip(dtype, order, data):
    scale = data.draw(st.sampled_from([0.1, 0.01, 0.5, 2.0, 10.0, -1.0]))
    offset = data.draw(st.sampled_from([0.0, -40.0, 273.15, 1000.0]))
    low, high = dtype.integer_range()
    raw = data.draw(st.integers(max(low, -(2**40)), min(high, 2**40)))
    enc = Encoding(dtype, order, scale=scale, offset=offset)
    regs = encode(Encoding(dtype, order), raw)
    engineering = decode(enc, regs)
    assert math.isclose(engineering, raw * scale + offset, rel_tol=1e-12, abs_tol=1e-9)
    assert encode(enc, engineering) == regs


@pytest.mark.parametrize("order", ORDERS)
@given(value=st.floats(-1e6, 1e6), data=st.data())
def test_scaled_floats_round_trip(order, value, data):
    scale = data.draw(st.sampled_from([0.1, 2.0, 1e-3]))
    offset = data.draw(st.sampled_from([0.0, 5.0]))
    enc = Encoding(DataType.FLOAT64, order, scale=scale, offset=offset)
    assert math.isclose(decode(enc, encode(enc, value)), value, rel_tol=1e-9, abs_tol=1e-9)


def test_bool_round_trips():
    enc = Encoding(DataType.BOOL)
    assert decode(enc, encode(enc, True)) is True
    assert decode(enc, encode(enc, False)) is False


# Known vectors: 1.5 as float32 is 0x3FC00000 = bytes A=3F B=C0 C=00 D=00.
@pytest.mark.parametrize(
    ("order", "regs"),
    [
        (Order.ABCD, [0x3FC0, 0x0000]),
        (Order.CDAB, [0x0000, 0x3FC0]),
        (Order.BADC, [0xC03F, 0x0000]),
        (Order.DCBA, [0x0000, 0xC03F]),
    ],
)
def test_float32_orders_place_bytes_as_named(order, regs):
    assert encode(Encoding(DataType.FLOAT32, order), 1.5) == regs


# 0x0102030405060708: bytes A..H = 01..08.
@pytest.mark.parametrize(
    ("order", "regs"),
    [
        (Order.ABCD, [0x0102, 0x0304, 0x0506, 0x0708]),
        (Order.CDAB, [0x0708, 0x0506, 0x0304, 0x0102]),
        (Order.BADC, [0x0201, 0x0403, 0x0605, 0x0807]),
        (Order.DCBA, [0x0807, 0x0605, 0x0403, 0x0201]),
    ],
)
def test_64_bit_orders_place_bytes_as_documented(order, regs):
    assert encode(Encoding(DataType.UINT64, order), 0x0102030405060708) == regs
    assert decode(Encoding(DataType.UINT64, order), regs) == 0x0102030405060708


def test_dcba_is_fully_little_endian():
    value = 0x0102030405060708
    regs = encode(Encoding(DataType.UINT64, Order.DCBA), value)
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    assert raw == struct.pack("<Q", value)


def test_16_bit_values_ignore_the_word_swap_but_not_the_byte_swap():
    assert encode(Encoding(DataType.UINT16, Order.CDAB), 0x1234) == [0x1234]
    assert encode(Encoding(DataType.UINT16, Order.BADC), 0x1234) == [0x3412]


@pytest.mark.parametrize(
    ("enc", "value", "why"),
    [
        (Encoding(DataType.UINT16), 65536, "outside uint16"),
        (Encoding(DataType.INT16), -32769, "outside int16"),
        (Encoding(DataType.UINT16), -1, "outside uint16"),
        (Encoding(DataType.INT16, scale=0.1), 3276.8, "outside int16"),
        (Encoding(DataType.FLOAT32), 1e39, "float32 range"),
        (Encoding(DataType.UINT16), "12", "takes a number"),
        (Encoding(DataType.UINT16), True, "takes a number"),
        (Encoding(DataType.STRING, length=2), "hello", "longer than 4"),
        (Encoding(DataType.STRING, length=2), "€", "outside Latin-1"),
        (Encoding(DataType.BOOL), 2, "true/false"),
        (Encoding(DataType.INT32, scale=2.0), math.inf, "not a finite number"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_the_reason(enc, value, why):
    with pytest.raises(CodecError, match=why):
        encode(enc, value)


def test_decode_needs_the_right_number_of_registers():
    with pytest.raises(CodecError, match="needs 2 registers, got 1"):
        decode(Encoding(DataType.FLOAT32), [1])
