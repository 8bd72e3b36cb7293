//! Password and raw-key decryption: layout parsing, key stretching and AES-GCM on arbitrary
//! bytes. The Argon2 cost is lowered so the fuzzer runs thousands of inputs a second; the code
//! path is the one archives use.
use pamoja_identity::password;

/// One input.
pub fn run(data: &[u8]) {
    let _ = password::decrypt_with_key(&[7u8; 32], data);
    let _ = password::decrypt_with_password_cost(
        b"fuzz",
        data,
        password::Cost {
            memory_kib: 8,
            passes: 1,
        },
    );
}
