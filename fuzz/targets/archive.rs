//! Archive files without a password (gzip, raw JSON, anything else) and the account they hold.
use pamoja_identity::{Account, Archive};

/// One input.
pub fn run(data: &[u8]) {
    if let Ok(archive) = Archive::decode(data, None) {
        let _ = archive.to_json();
        if let Ok(account) = Account::from_archive(archive) {
            let _ = (account.devices(), account.revoked_devices());
        }
    }
}
