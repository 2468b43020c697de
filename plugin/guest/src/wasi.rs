//! [`Transport`] over `wasi:http/outgoing-handler`: the only way out of the
//! sandbox, so the host's allowlist applies to every request.

wit_bindgen::generate!({
    // wasi:http and what it uses, as the contract's WIT pins them.
    path: [
        "../../wit/0.2.0/deps/io.wit",
        "../../wit/0.2.0/deps/clocks.wit",
        "../../wit/0.2.0/deps/random.wit",
        "../../wit/0.2.0/deps/filesystem.wit",
        "../../wit/0.2.0/deps/sockets.wit",
        "../../wit/0.2.0/deps/cli.wit",
        "../../wit/0.2.0/deps/http.wit",
    ],
    inline: "package registry:guest; world imports { import wasi:http/outgoing-handler@0.2.12; }",
    world: "registry:guest/imports",
    generate_all,
});

use self::wasi::http::outgoing_handler;
use self::wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use self::wasi::io::streams::StreamError;
use crate::{Request, Response, Transport, Url};

/// Sends requests through the host.
pub struct WasiTransport;

impl Transport for WasiTransport {
    fn send(&mut self, req: Request) -> Result<Response, String> {
        let url = Url::parse(&req.url)?;
        let mut entries: Vec<(String, Vec<u8>)> = req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())).collect();
        // A body of known length says so: without it the request goes out
        // chunked, which some servers (Python's WSGI ones among them) read
        // as empty.
        if !req.body.is_empty() && !entries.iter().any(|(k, _)| k == "content-length") {
            entries.push(("content-length".into(), req.body.len().to_string().into_bytes()));
        }
        let headers = Fields::from_list(&entries).map_err(|e| format!("bad request headers: {e:?}"))?;
        let request = OutgoingRequest::new(headers);
        let method = match req.method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "PUT" => Method::Put,
            other => Method::Other(other.to_string()),
        };
        request.set_method(&method).map_err(|_| "bad method")?;
        request.set_scheme(Some(&if url.scheme == "https" { Scheme::Https } else { Scheme::Http })).map_err(|_| "bad scheme")?;
        request.set_authority(Some(&url.authority)).map_err(|_| "bad authority")?;
        request.set_path_with_query(Some(&url.path_and_query)).map_err(|_| "bad path")?;
        let body = request.body().map_err(|_| "request body unavailable")?;
        let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
        {
            let stream = body.write().map_err(|_| "request body stream unavailable")?;
            for chunk in req.body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(|e| format!("sending the body: {e:?}"))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| format!("finishing the body: {e:?}"))?;
        let response = loop {
            match future.get() {
                Some(r) => break r,
                None => future.subscribe().block(),
            }
        };
        let response = response.map_err(|_| "response already taken")?.map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|_| "response body unavailable")?;
        let mut bytes = Vec::new();
        {
            let stream = incoming.stream().map_err(|_| "response body stream unavailable")?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(format!("reading the response: {e:?}")),
                }
            }
        }
        let _trailers = IncomingBody::finish(incoming);
        Ok(Response { status, headers, body: bytes })
    }
}
