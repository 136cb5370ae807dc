//! Any bytes through both RecordIO decoders (the whole-buffer one and the batch stream): each must
//! decode or return an error, never panic, abort or allocate past what the input holds.

#![no_main]

use fmfast_core::parallel::Unmonitored;
use fmfast_core::recordio::{decode_buffer, RecordStream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = decode_buffer(data, &Unmonitored);
    let mut stream = RecordStream::new(data);
    let mut rows = 0;
    let streamed = loop {
        match stream.next_batch(3, &Unmonitored) {
            Ok(Some(batch)) => rows += batch.n_rows,
            Ok(None) => break Ok(rows),
            Err(err) => break Err(err),
        }
    };
    // The two readers agree on whether the stream is valid, and on its rows when it is.
    match (whole, streamed) {
        (Ok(decoded), Ok(rows)) => assert_eq!(decoded.n_rows, rows),
        (Err(_), Err(_)) => {}
        (whole, streamed) => panic!("decoders disagree: {whole:?} vs {streamed:?}"),
    }
});
