//! The server's answer: parsing never panics, whatever the bytes, and an
//! answer to a status request that reads as one renders to the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let protocol::Answer::Success(success) = protocol::parse_answer(data)
        && let Ok(info) = protocol::HostInfo::from_answer(&success)
    {
        let rendered = info.render();
        let protocol::Answer::Success(again) = protocol::parse_answer(rendered.as_bytes()) else {
            panic!("a rendered status answer is not a success")
        };
        assert_eq!(protocol::HostInfo::from_answer(&again).ok(), Some(info));
    }
});
