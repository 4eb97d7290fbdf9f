//! Duration literals: `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1h 30m"`, checked at compile time.

use syn::LitStr;

/// A duration in whole milliseconds, with the literal it came from.
#[derive(Clone)]
pub(crate) struct DurationLit {
    pub(crate) millis: u64,
    pub(crate) lit: LitStr,
}

pub(crate) fn parse(lit: &LitStr) -> Result<DurationLit, syn::Error> {
    let text = lit.value();
    let example =
        "write a number and a unit, e.g. \"250ms\", \"30s\", \"5m\", \"1h\" or \"1h 30m\"";
    let duration = humantime::parse_duration(&text).map_err(|err| {
        syn::Error::new(
            lit.span(),
            format!("invalid duration \"{text}\": {err}; {example}"),
        )
    })?;
    if duration.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!("duration \"{text}\" must be greater than zero; {example}"),
        ));
    }
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(syn::Error::new(
            lit.span(),
            format!("duration \"{text}\" is finer than a millisecond, the resolution of every activity timeout"),
        ));
    }
    let millis = u64::try_from(duration.as_millis())
        .map_err(|_| syn::Error::new(lit.span(), format!("duration \"{text}\" is too long")))?;
    Ok(DurationLit {
        millis,
        lit: lit.clone(),
    })
}
