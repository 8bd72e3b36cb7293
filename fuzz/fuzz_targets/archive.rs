#![no_main]
//! Archive files without a password (gzip, raw JSON, anything else) and the account they hold.
use libfuzzer_sys::fuzz_target;
use pamoja_identity::{Account, Archive};

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = Archive::decode(data, None) {
        let _ = archive.to_json();
        if let Ok(account) = Account::from_archive(archive) {
            let _ = (account.devices(), account.revoked_devices());
        }
    }
});
