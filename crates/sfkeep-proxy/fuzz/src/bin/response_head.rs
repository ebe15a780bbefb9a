//! AFL target: `sfkeep_proxy::fuzzing::response_head` (see its docs for the invariants checked).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        sfkeep_proxy::fuzzing::response_head(data);
    });
}
