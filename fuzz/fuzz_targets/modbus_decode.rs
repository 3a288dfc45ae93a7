//! Modbus register decoding: any registers, any type, any word order. Checks: nothing panics,
//! and a value that decodes re-encodes to the same registers (for the integer and float types
//! the codec is a bijection on the registers it reads; NaN payloads excepted).
#![no_main]

use coldaisle_core::registers::{decode, decode_string, encode, RegisterType, WordOrder};
use libfuzzer_sys::fuzz_target;

const ORDERS: [WordOrder; 4] = [
    WordOrder::Abcd,
    WordOrder::Cdab,
    WordOrder::Badc,
    WordOrder::Dcba,
];

fuzz_target!(|data: &[u8]| {
    let [ty, order, rest @ ..] = data else {
        return;
    };
    let ty = RegisterType::ALL[usize::from(*ty) % RegisterType::ALL.len()];
    let order = ORDERS[usize::from(*order) % ORDERS.len()];
    let registers: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let _ = decode_string(&registers, order);
    if let Ok(value) = decode(&registers, ty, order) {
        let exact = matches!(
            ty,
            RegisterType::Int16
                | RegisterType::Uint16
                | RegisterType::Int32
                | RegisterType::Uint32
                | RegisterType::Float32
        );
        if exact && value.is_finite() {
            let again = encode(value, ty, order);
            assert_eq!(&registers[..again.len()], &again[..], "{ty:?} {order:?} {value}");
        }
    }
});
