//! A transport with canned answers per request, for unit tests.

use std::cell::RefCell;
use std::collections::BTreeMap;

use ferrometal_plugin_sdk::bmc_driver::http::{HttpError, Request, Response, Transport};

/// Canned JSON per `"<Method> <path>"`; records every request. A path answered more than
/// once takes its answers in order and repeats the last.
pub struct Canned {
    answers: RefCell<BTreeMap<String, Vec<(u16, String)>>>,
    /// Every request sent.
    pub sent: RefCell<Vec<Request>>,
}

impl Canned {
    /// A transport with these answers.
    pub fn new(answers: &[(&str, u16, &str)]) -> Self {
        let mut map: BTreeMap<String, Vec<(u16, String)>> = BTreeMap::new();
        for (path, status, body) in answers {
            map.entry((*path).to_owned())
                .or_default()
                .push((*status, (*body).to_owned()));
        }
        Self {
            answers: RefCell::new(map),
            sent: RefCell::new(Vec::new()),
        }
    }

    /// The paths asked for so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.sent.borrow().iter().map(|r| r.path.clone()).collect()
    }
}

impl Transport for Canned {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let key = format!("{:?} {}", request.method, request.path);
        self.sent.borrow_mut().push(request.clone());
        let mut answers = self.answers.borrow_mut();
        let queue = answers
            .get_mut(&key)
            .ok_or_else(|| HttpError::Other(Some(format!("unexpected {key}"))))?;
        let (status, body) = if queue.len() > 1 {
            queue.remove(0)
        } else {
            queue[0].clone()
        };
        Ok(Response {
            status,
            headers: Vec::new(),
            body: body.into_bytes(),
        })
    }
}
