//! Modbus register decoding: any registers, any type, any word order. Checks: nothing panics,
//! and a value that decodes re-encodes to the same registers (for the integer and float types
//! the codec is a bijection on the registers it reads; NaN payloads excepted).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::modbus_decode(data));
