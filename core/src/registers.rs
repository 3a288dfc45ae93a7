//! Pure decoding of Modbus register values: 16-, 32- and 64-bit integers and IEEE 754 floats
//! spread over one to four 16-bit registers, in any of the four word/byte orders that devices
//! use, the linear scale and offset that register maps apply, and fixed-length ASCII strings
//! ([`decode_string`]).
//!
//! Invariants:
//! - this module does no I/O and keeps no state;
//! - [`decode`] never panics, whatever slice it is given: a slice of the wrong length is a
//!   [`DecodeError::WrongLength`], and a float register that holds NaN or an infinity is a
//!   [`DecodeError::NotFinite`] (a sensor reading must be a number);
//! - [`encode`] is the inverse of [`decode`] for every value that the register type holds and an
//!   `f64` represents exactly (all of them except 64-bit integers beyond ±2^53).
//!
//! # Word orders
//!
//! Name the bytes of a value from the most significant (`A`) to the least significant; a
//! [`WordOrder`] says in which order they arrive in the registers, two bytes per register, the
//! first byte of each register being its high byte on the wire. For a 32-bit value:
//!
//! | order  | registers      | also known as                          |
//! |--------|----------------|----------------------------------------|
//! | `ABCD` | `[AB, CD]`     | big endian                             |
//! | `CDAB` | `[CD, AB]`     | low word first, bytes big endian       |
//! | `BADC` | `[BA, DC]`     | high word first, bytes swapped         |
//! | `DCBA` | `[DC, BA]`     | little endian                          |
//!
//! 64-bit values follow the same rule over four registers: `CDAB` and `DCBA` reverse all four
//! words (least significant word first), `BADC` and `DCBA` swap the bytes inside each word.
//! For a 16-bit value only the byte swap matters: `BADC` and `DCBA` read `[BA]`, the other two
//! `[AB]`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a point's value is laid out in registers: its width, signedness and whether it is an
/// IEEE 754 float. Written in lower case in configuration (`type = "int32"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterType {
    /// Signed 16-bit integer (two's complement), one register.
    Int16,
    /// Unsigned 16-bit integer, one register; the Modbus default.
    #[default]
    Uint16,
    /// Signed 32-bit integer, two registers.
    Int32,
    /// Unsigned 32-bit integer, two registers.
    Uint32,
    /// IEEE 754 single-precision float, two registers.
    Float32,
    /// Signed 64-bit integer, four registers (exact only up to ±2^53 once in an `f64`).
    Int64,
    /// Unsigned 64-bit integer, four registers (exact only up to 2^53 once in an `f64`).
    Uint64,
    /// IEEE 754 double-precision float, four registers.
    Float64,
}

impl RegisterType {
    /// Every register type, for tests and for listing the accepted names in error messages.
    pub const ALL: [RegisterType; 8] = [
        RegisterType::Int16,
        RegisterType::Uint16,
        RegisterType::Int32,
        RegisterType::Uint32,
        RegisterType::Float32,
        RegisterType::Int64,
        RegisterType::Uint64,
        RegisterType::Float64,
    ];

    /// How many consecutive 16-bit registers one value of this type occupies.
    #[must_use]
    pub fn register_count(self) -> u16 {
        match self {
            RegisterType::Int16 | RegisterType::Uint16 => 1,
            RegisterType::Int32 | RegisterType::Uint32 | RegisterType::Float32 => 2,
            RegisterType::Int64 | RegisterType::Uint64 | RegisterType::Float64 => 4,
        }
    }

    /// The name used in configuration files, e.g. `"int32"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RegisterType::Int16 => "int16",
            RegisterType::Uint16 => "uint16",
            RegisterType::Int32 => "int32",
            RegisterType::Uint32 => "uint32",
            RegisterType::Float32 => "float32",
            RegisterType::Int64 => "int64",
            RegisterType::Uint64 => "uint64",
            RegisterType::Float64 => "float64",
        }
    }

    /// Whether this is an IEEE 754 float type (the only kind that can be NaN or infinite).
    #[must_use]
    pub fn is_float(self) -> bool {
        matches!(self, RegisterType::Float32 | RegisterType::Float64)
    }
}

impl fmt::Display for RegisterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// In which order the bytes of a multi-byte value arrive in the registers (see the module
/// documentation for the table). Written in upper case in configuration (`order = "CDAB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WordOrder {
    /// Big endian words and bytes: most significant word first, high byte first.
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    /// Least significant word first, bytes big endian inside each word.
    #[serde(rename = "CDAB")]
    Cdab,
    /// Most significant word first, bytes swapped inside each word.
    #[serde(rename = "BADC")]
    Badc,
    /// Fully little endian: least significant word first, bytes swapped inside each word.
    #[serde(rename = "DCBA")]
    Dcba,
}

impl WordOrder {
    /// Every word order, for tests and for listing the accepted names in error messages.
    pub const ALL: [WordOrder; 4] = [
        WordOrder::Abcd,
        WordOrder::Cdab,
        WordOrder::Badc,
        WordOrder::Dcba,
    ];

    /// The name used in configuration files, e.g. `"CDAB"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
            WordOrder::Badc => "BADC",
            WordOrder::Dcba => "DCBA",
        }
    }

    /// Whether the least significant word comes first.
    fn reverses_words(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }

    /// Whether the two bytes of each register are swapped.
    fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why registers could not be turned into a reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The slice does not hold exactly the number of registers the type needs; usually a
    /// configuration or request-splitting mistake.
    #[error(
        "expected {expected} register{} for {ty}, got {got}",
        if *expected == 1 { "" } else { "s" }
    )]
    WrongLength {
        /// The type that was being decoded.
        ty: RegisterType,
        /// [`RegisterType::register_count`] of `ty`.
        expected: u16,
        /// How many registers were given.
        got: usize,
    },
    /// A float register holds NaN or an infinity, which devices use to flag a missing or
    /// failed sensor.
    #[error("{ty} register value is NaN or infinite (sensor missing or failed?)")]
    NotFinite {
        /// The float type that was being decoded.
        ty: RegisterType,
    },
}

/// Decodes one value of type `ty` from `registers`, laid out in `order`.
///
/// `registers` must hold exactly [`RegisterType::register_count`] registers. Integers are
/// returned exactly, except 64-bit ones beyond ±2^53, which round to the nearest `f64`.
///
/// # Errors
///
/// [`DecodeError::WrongLength`] if the slice has the wrong length, [`DecodeError::NotFinite`] if
/// a float is NaN or infinite.
pub fn decode(registers: &[u16], ty: RegisterType, order: WordOrder) -> Result<f64, DecodeError> {
    let expected = ty.register_count();
    if registers.len() != usize::from(expected) {
        return Err(DecodeError::WrongLength {
            ty,
            expected,
            got: registers.len(),
        });
    }
    let bits = registers_to_bits(registers, order);
    // The `as` casts below keep the low bits on purpose: `bits` holds exactly
    // `register_count * 16` significant bits.
    let value = match ty {
        RegisterType::Int16 => f64::from(bits as u16 as i16),
        RegisterType::Uint16 => f64::from(bits as u16),
        RegisterType::Int32 => f64::from(bits as u32 as i32),
        RegisterType::Uint32 => f64::from(bits as u32),
        RegisterType::Float32 => f64::from(f32::from_bits(bits as u32)),
        RegisterType::Int64 => bits as i64 as f64,
        RegisterType::Uint64 => bits as f64,
        RegisterType::Float64 => f64::from_bits(bits),
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DecodeError::NotFinite { ty })
    }
}

/// Applies a register map's linear conversion: `raw * scale + offset` (e.g. scale `0.1` for a
/// value in tenths of a degree).
#[must_use]
pub fn scale(raw: f64, scale: f64, offset: f64) -> f64 {
    raw * scale + offset
}

/// Encodes `value` as type `ty` in `order`: the inverse of [`decode`], used by the device
/// simulator and by tests. Returns [`RegisterType::register_count`] registers.
///
/// Integer types round `value` to the nearest integer (halves away from zero) and saturate at
/// the type's bounds; NaN encodes as 0. Float types keep NaN and infinities, so a simulator can
/// produce the readings of a failed sensor; `float32` rounds to the nearest `f32`.
#[must_use]
pub fn encode(value: f64, ty: RegisterType, order: WordOrder) -> Vec<u16> {
    let int = value.round();
    // `as` from f64 to an integer saturates and maps NaN to 0, which is the documented
    // behaviour; the integer-to-integer casts reinterpret two's complement bits.
    let bits: u64 = match ty {
        RegisterType::Int16 => u64::from(int as i16 as u16),
        RegisterType::Uint16 => u64::from(int as u16),
        RegisterType::Int32 => u64::from(int as i32 as u32),
        RegisterType::Uint32 => u64::from(int as u32),
        RegisterType::Float32 => u64::from((value as f32).to_bits()),
        RegisterType::Int64 => int as i64 as u64,
        RegisterType::Uint64 => int as u64,
        RegisterType::Float64 => value.to_bits(),
    };
    bits_to_registers(bits, ty.register_count(), order)
}

/// Decodes a fixed-length string held in `registers`, two bytes per register (model names,
/// serial numbers, firmware versions). The high byte of each register comes first, unless
/// `order` swaps bytes (`BADC`, `DCBA`); word order does not apply to strings. The text ends at
/// the first NUL; trailing spaces are trimmed and bytes outside printable ASCII read as `?`.
/// Never panics, whatever the registers hold.
#[must_use]
pub fn decode_string(registers: &[u16], order: WordOrder) -> String {
    let bytes = registers.iter().flat_map(|&r| {
        let [high, low] = r.to_be_bytes();
        if order.swaps_bytes() {
            [low, high]
        } else {
            [high, low]
        }
    });
    let text: String = bytes
        .take_while(|&b| b != 0)
        .map(|b| {
            if b == b' ' || b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    text.trim_end().to_string()
}

/// Joins registers (at most four) into one integer, most significant byte first.
fn registers_to_bits(registers: &[u16], order: WordOrder) -> u64 {
    let push = |acc: u64, &register: &u16| {
        let word = if order.swaps_bytes() {
            register.swap_bytes()
        } else {
            register
        };
        (acc << 16) | u64::from(word)
    };
    if order.reverses_words() {
        registers.iter().rev().fold(0, push)
    } else {
        registers.iter().fold(0, push)
    }
}

/// Splits the low `count * 16` bits of `bits` into `count` registers laid out in `order`.
fn bits_to_registers(bits: u64, count: u16, order: WordOrder) -> Vec<u16> {
    let mut words: Vec<u16> = (0..count)
        .rev()
        .map(|i| (bits >> (16 * u32::from(i))) as u16)
        .collect();
    if order.reverses_words() {
        words.reverse();
    }
    if order.swaps_bytes() {
        for word in &mut words {
            *word = word.swap_bytes();
        }
    }
    words
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RegisterType::*;
    use WordOrder::*;

    #[test]
    fn apc_inrow_int32_abcd_tenths_fahrenheit() {
        // APC InRow SC, holding 92 supply air: INT32, big-endian words, tenths of a degree F.
        let raw = decode(&[0x0000, 0x02D0], Int32, Abcd).unwrap();
        assert_eq!(raw, 720.0);
        assert_eq!(scale(raw, 0.1, 0.0), 72.0);
    }

    #[test]
    fn negative_int32_in_every_order() {
        // -10 = 0xFFFF_FFF6
        assert_eq!(decode(&[0xFFFF, 0xFFF6], Int32, Abcd), Ok(-10.0));
        assert_eq!(decode(&[0xFFF6, 0xFFFF], Int32, Cdab), Ok(-10.0));
        assert_eq!(decode(&[0xFFFF, 0xF6FF], Int32, Badc), Ok(-10.0));
        assert_eq!(decode(&[0xF6FF, 0xFFFF], Int32, Dcba), Ok(-10.0));
    }

    #[test]
    fn uint32_orders_place_bytes_as_documented() {
        assert_eq!(decode(&[0x1234, 0x5678], Uint32, Abcd), Ok(305_419_896.0));
        assert_eq!(decode(&[0x5678, 0x1234], Uint32, Cdab), Ok(305_419_896.0));
        assert_eq!(decode(&[0x3412, 0x7856], Uint32, Badc), Ok(305_419_896.0));
        assert_eq!(decode(&[0x7856, 0x3412], Uint32, Dcba), Ok(305_419_896.0));
        assert_eq!(decode(&[0xFFFF, 0xFFFF], Uint32, Abcd), Ok(4_294_967_295.0));
    }

    #[test]
    fn float32_23_5_in_every_order() {
        // 23.5 = 0x41BC_0000; Liebert/Vertiv maps use CDAB (low word first).
        assert_eq!(decode(&[0x0000, 0x41BC], Float32, Cdab), Ok(23.5));
        assert_eq!(decode(&[0x41BC, 0x0000], Float32, Abcd), Ok(23.5));
        assert_eq!(decode(&[0xBC41, 0x0000], Float32, Badc), Ok(23.5));
        assert_eq!(decode(&[0x0000, 0xBC41], Float32, Dcba), Ok(23.5));
        assert_eq!(encode(23.5, Float32, Cdab), vec![0x0000, 0x41BC]);
    }

    #[test]
    fn int16_negative_and_byte_swap() {
        // -200 = 0xFF38
        assert_eq!(decode(&[0xFF38], Int16, Abcd), Ok(-200.0));
        assert_eq!(decode(&[0xFF38], Int16, Cdab), Ok(-200.0));
        assert_eq!(decode(&[0x38FF], Int16, Badc), Ok(-200.0));
        assert_eq!(decode(&[0x38FF], Int16, Dcba), Ok(-200.0));
        assert_eq!(decode(&[0xFF38], Uint16, Abcd), Ok(65_336.0));
        assert_eq!(decode(&[0x8000], Int16, Abcd), Ok(-32_768.0));
    }

    #[test]
    fn sixty_four_bit_orders() {
        let value = 0x0001_0203_0405_0607_u64 as f64;
        assert_eq!(
            decode(&[0x0001, 0x0203, 0x0405, 0x0607], Uint64, Abcd),
            Ok(value)
        );
        assert_eq!(
            decode(&[0x0607, 0x0405, 0x0203, 0x0001], Uint64, Cdab),
            Ok(value)
        );
        assert_eq!(
            decode(&[0x0100, 0x0302, 0x0504, 0x0706], Uint64, Badc),
            Ok(value)
        );
        assert_eq!(
            decode(&[0x0706, 0x0504, 0x0302, 0x0100], Uint64, Dcba),
            Ok(value)
        );
        assert_eq!(decode(&[0xFFFF; 4], Int64, Abcd), Ok(-1.0));
        // 23.5 = 0x4037_8000_0000_0000
        assert_eq!(decode(&[0x4037, 0x8000, 0, 0], Float64, Abcd), Ok(23.5));
        assert_eq!(decode(&[0, 0, 0x8000, 0x4037], Float64, Cdab), Ok(23.5));
    }

    #[test]
    fn wrong_length_is_an_error_with_a_readable_message() {
        let err = decode(&[0x0000], Int32, Abcd).unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongLength {
                ty: Int32,
                expected: 2,
                got: 1
            }
        );
        assert_eq!(err.to_string(), "expected 2 registers for int32, got 1");
        let err = decode(&[1, 2], Uint16, Abcd).unwrap_err();
        assert_eq!(err.to_string(), "expected 1 register for uint16, got 2");
        assert!(decode(&[], Float64, Dcba).is_err());
    }

    #[test]
    fn nan_and_infinity_are_not_readings() {
        for regs in [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]] {
            assert_eq!(
                decode(&regs, Float32, Abcd),
                Err(DecodeError::NotFinite { ty: Float32 })
            );
        }
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for order in WordOrder::ALL {
                for ty in [Float32, Float64] {
                    assert_eq!(
                        decode(&encode(value, ty, order), ty, order),
                        Err(DecodeError::NotFinite { ty })
                    );
                }
            }
        }
    }

    #[test]
    fn encode_rounds_and_saturates_integers() {
        assert_eq!(encode(71.6, Int32, Abcd), vec![0x0000, 0x0048]);
        assert_eq!(encode(-0.5, Int16, Abcd), vec![0xFFFF]);
        assert_eq!(encode(1e9, Int16, Abcd), vec![0x7FFF]);
        assert_eq!(encode(-5.0, Uint16, Abcd), vec![0x0000]);
        assert_eq!(encode(f64::NAN, Uint32, Abcd), vec![0, 0]);
    }

    #[test]
    fn strings_read_high_byte_first_unless_swapped() {
        // "ACRC602" + NUL padding, as a register map's model-name field.
        let regs = [0x4143, 0x5243, 0x3630, 0x3200, 0x0000];
        assert_eq!(decode_string(&regs, Abcd), "ACRC602");
        let swapped: Vec<u16> = regs.iter().map(|r| r.swap_bytes()).collect();
        assert_eq!(decode_string(&swapped, Badc), "ACRC602");
        assert_eq!(decode_string(&[0x4142, 0x2020], Abcd), "AB");
        assert_eq!(decode_string(&[0x41FF, 0x0A42], Abcd), "A??B");
        assert_eq!(decode_string(&[], Abcd), "");
    }

    #[test]
    fn scale_applies_factor_then_offset() {
        assert_eq!(scale(720.0, 0.1, 0.0), 72.0);
        assert_eq!(scale(100.0, 0.5, -40.0), 10.0);
        assert_eq!(scale(3.0, 1.0, 0.0), 3.0);
    }

    #[test]
    fn serde_names_match_configuration_syntax() {
        let ty: RegisterType = serde_json::from_str("\"int32\"").unwrap();
        assert_eq!(ty, Int32);
        let order: WordOrder = serde_json::from_str("\"CDAB\"").unwrap();
        assert_eq!(order, Cdab);
        for ty in RegisterType::ALL {
            assert_eq!(
                serde_json::to_string(&ty).unwrap(),
                format!("\"{}\"", ty.name())
            );
        }
        for order in WordOrder::ALL {
            assert_eq!(
                serde_json::to_string(&order).unwrap(),
                format!("\"{}\"", order.name())
            );
        }
        assert!(serde_json::from_str::<WordOrder>("\"cdab\"").is_err());
        assert_eq!(RegisterType::default(), Uint16);
        assert_eq!(WordOrder::default(), Abcd);
    }

    #[test]
    fn register_counts() {
        let counts: Vec<u16> = RegisterType::ALL
            .iter()
            .map(|ty| ty.register_count())
            .collect();
        assert_eq!(counts, [1, 1, 2, 2, 2, 4, 4, 4]);
    }

    fn any_order() -> impl Strategy<Value = WordOrder> {
        prop::sample::select(WordOrder::ALL.to_vec())
    }

    fn any_type() -> impl Strategy<Value = RegisterType> {
        prop::sample::select(RegisterType::ALL.to_vec())
    }

    /// Asserts that `value` survives `encode` then `decode` unchanged.
    fn assert_round_trip(value: f64, ty: RegisterType, order: WordOrder) {
        let registers = encode(value, ty, order);
        assert_eq!(registers.len(), usize::from(ty.register_count()));
        assert_eq!(decode(&registers, ty, order), Ok(value), "{ty} {order}");
    }

    /// The largest integer below which every integer is an exact `f64`.
    const EXACT: i64 = 1 << 53;

    proptest! {
        #[test]
        fn int16_round_trip(v in any::<i16>(), order in any_order()) {
            assert_round_trip(f64::from(v), Int16, order);
        }

        #[test]
        fn uint16_round_trip(v in any::<u16>(), order in any_order()) {
            assert_round_trip(f64::from(v), Uint16, order);
        }

        #[test]
        fn int32_round_trip(v in any::<i32>(), order in any_order()) {
            assert_round_trip(f64::from(v), Int32, order);
        }

        #[test]
        fn uint32_round_trip(v in any::<u32>(), order in any_order()) {
            assert_round_trip(f64::from(v), Uint32, order);
        }

        #[test]
        fn float32_round_trip(
            v in any::<f32>().prop_filter("finite", |v| v.is_finite()),
            order in any_order(),
        ) {
            assert_round_trip(f64::from(v), Float32, order);
        }

        #[test]
        fn int64_round_trip(v in -EXACT..=EXACT, order in any_order()) {
            assert_round_trip(v as f64, Int64, order);
        }

        #[test]
        fn uint64_round_trip(v in 0..=EXACT as u64, order in any_order()) {
            assert_round_trip(v as f64, Uint64, order);
        }

        #[test]
        fn float64_round_trip(
            v in any::<f64>().prop_filter("finite", |v| v.is_finite()),
            order in any_order(),
        ) {
            assert_round_trip(v, Float64, order);
        }

        /// Whatever a device sends, decoding returns a value or an error, never panics; a
        /// decoded value re-encodes to the same registers (64-bit integers excepted, as they may
        /// have been rounded).
        #[test]
        fn arbitrary_registers_never_panic(
            registers in prop::collection::vec(any::<u16>(), 0..8),
            ty in any_type(),
            order in any_order(),
        ) {
            match decode(&registers, ty, order) {
                Ok(value) => {
                    prop_assert!(value.is_finite());
                    prop_assert_eq!(registers.len(), usize::from(ty.register_count()));
                    if !matches!(ty, Int64 | Uint64) {
                        prop_assert_eq!(encode(value, ty, order), registers);
                    }
                }
                Err(DecodeError::WrongLength { expected, got, .. }) => {
                    prop_assert_eq!(expected, ty.register_count());
                    prop_assert_eq!(got, registers.len());
                    prop_assert_ne!(got, usize::from(expected));
                }
                Err(DecodeError::NotFinite { ty: reported }) => {
                    prop_assert_eq!(reported, ty);
                    prop_assert!(ty.is_float());
                }
            }
        }

        /// A string field of any content decodes without panicking to at most two printable
        /// characters per register.
        #[test]
        fn arbitrary_string_registers_never_panic(
            registers in prop::collection::vec(any::<u16>(), 0..40),
            order in any_order(),
        ) {
            let text = decode_string(&registers, order);
            prop_assert!(text.len() <= registers.len() * 2);
            prop_assert!(text.chars().all(|c| c == ' ' || c.is_ascii_graphic()));
        }

        /// Encoding never panics and always yields the type's register count.
        #[test]
        fn encode_any_value_has_the_right_length(
            value in any::<f64>(),
            ty in any_type(),
            order in any_order(),
        ) {
            prop_assert_eq!(encode(value, ty, order).len(), usize::from(ty.register_count()));
        }
    }
}
