//! Kubernetes resource quantities (`100m`, `1.5`, `512Mi`, `1e3`) as exact numbers.
//!
//! Values are held in nano-units as `i128`, which covers every quantity Kubernetes
//! accepts for CPU, memory and storage without rounding surprises.

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kubernetes quantity (e.g. 250m, 1.5, 512Mi, 2Gi)")]
pub struct QuantityError(pub String);

/// A parsed quantity, in nano-units (`1` = 1_000_000_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub fn parse(raw: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError(raw.to_owned());
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(err());
        }
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // mantissa as an integer with `frac_digits` decimal places
        let digits = format!("{int_part}{frac_part}");
        let mut mantissa: i128 = 0;
        for b in digits.bytes() {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or_else(err)?;
        }
        let mut exp10: i32 = -(frac_part.len() as i32);
        let mut multiplier: i128 = 1;
        match suffix {
            "" => {}
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            "Ki" => multiplier = 1 << 10,
            "Mi" => multiplier = 1 << 20,
            "Gi" => multiplier = 1 << 30,
            "Ti" => multiplier = 1 << 40,
            "Pi" => multiplier = 1 << 50,
            "Ei" => multiplier = 1 << 60,
            other => {
                let exp = other
                    .strip_prefix('e')
                    .or_else(|| other.strip_prefix('E'))
                    .ok_or_else(err)?;
                let exp: i32 = exp.parse().map_err(|_| err())?;
                if !(-30..=30).contains(&exp) {
                    return Err(err());
                }
                exp10 += exp;
            }
        }
        // nanos = mantissa * multiplier * 10^(exp10 + 9), rounding up fractions of a nano
        let mut nanos = mantissa.checked_mul(multiplier).ok_or_else(err)?;
        let shift = exp10 + 9;
        if shift >= 0 {
            nanos = nanos
                .checked_mul(10i128.checked_pow(shift as u32).ok_or_else(err)?)
                .ok_or_else(err)?;
        } else {
            let div = 10i128.checked_pow((-shift) as u32).ok_or_else(err)?;
            nanos = nanos.checked_add(div - 1).ok_or_else(err)? / div;
        }
        Ok(Self {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// Whole units, rounded up (how the kubelet exposes CPU cores and bytes).
    pub fn ceil_units(self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// Thousandths, rounded up (millicores).
    pub fn ceil_millis(self) -> i128 {
        div_ceil(self.nanos, NANO / 1000)
    }

    /// `self / divisor`, rounded up, as the downward API computes resourceFieldRef.
    pub fn ceil_div(self, divisor: Quantity) -> Option<i128> {
        if divisor.nanos <= 0 {
            return None;
        }
        Some(div_ceil(self.nanos, divisor.nanos))
    }

    pub fn from_millis(millis: u64) -> Self {
        Self {
            nanos: i128::from(millis) * (NANO / 1000),
        }
    }

    pub fn from_units(units: u64) -> Self {
        Self {
            nanos: i128::from(units) * NANO,
        }
    }

    /// Non-negative whole value clamped into `u64`.
    pub fn units_u64(self) -> u64 {
        u64::try_from(self.ceil_units().max(0)).unwrap_or(u64::MAX)
    }

    pub fn millis_u64(self) -> u64 {
        u64::try_from(self.ceil_millis().max(0)).unwrap_or(u64::MAX)
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

/// CPU millicores as a Kubernetes quantity string (`4000` → `4`, `1500` → `1500m`).
pub fn cpu_quantity(millis: u64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes as a Kubernetes quantity string (`Ki` when exact, like the kubelet).
pub fn bytes_quantity(bytes: u64) -> String {
    if bytes != 0 && bytes % 1024 == 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests;
