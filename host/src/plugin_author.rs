//! `ferrometal plugin new | build`: the plugin author's road. `new` writes a crate for a
//! world (with native unit tests against canned answers), `build` turns it into a
//! `wasm32-wasip2` component with Debian's wasm toolchain, so which cargo, rustc, linker,
//! flags, target directory and lockfile a build needs is not the author's problem. Also the
//! driver-selection table of `plugin list`.

mod build;
mod new;
mod selection;

pub use build::{BuildArgs, build};
pub use new::{NewArgs, new};
pub use selection::print_selection;
