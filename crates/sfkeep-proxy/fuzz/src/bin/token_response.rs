//! AFL target: the OAuth token-response parser (`sfkeep::grant::parse_token_response`), with and
//! without a signature check, for a success and an error status. Any result is fine; a panic is not.
fn main() {
    let secret = sfkeep::secret::ClientSecret::new("fuzz-secret");
    afl::fuzz!(|data: &[u8]| {
        for status in [200, 400] {
            let _ = sfkeep::grant::parse_token_response(status, data, "fuzz", None);
            let _ = sfkeep::grant::parse_token_response(status, data, "fuzz", Some(&secret));
        }
    });
}
