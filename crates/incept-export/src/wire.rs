//! The protobuf wire format, as much of it as reading and writing ONNX files needs.
//!
//! Reading splits a message into its fields and keeps each field's raw bytes, so fields incept
//! does not change (the backbone's 300-odd nodes and 60 MB of weights) are copied as they are,
//! whatever the ONNX version that wrote them added. Writing builds the few small messages incept
//! adds. Reference: <https://protobuf.dev/programming-guides/encoding/>.

use crate::{Error, Result};

/// A field's value as the wire carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    /// Length-delimited: a string, bytes, a packed list or an embedded message.
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    /// The field as encoded (tag and value), for copying it unchanged.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The value of a length-delimited field.
    pub fn bytes(&self) -> Result<&'a [u8]> {
        match self.value {
            Value::Bytes(bytes) => Ok(bytes),
            _ => Err(Error::Malformed(format!("field {} is not length-delimited", self.number))),
        }
    }

    pub fn string(&self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| Error::Malformed(format!("field {} is not UTF-8", self.number)))
    }

    pub fn varint(&self) -> Result<u64> {
        match self.value {
            Value::Varint(value) => Ok(value),
            _ => Err(Error::Malformed(format!("field {} is not a varint", self.number))),
        }
    }
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or_else(|| Error::Malformed("truncated varint".into()))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::Malformed("varint longer than 10 bytes".into()))
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, length: usize) -> Result<&'a [u8]> {
    let end = at
        .checked_add(length)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| Error::Malformed("a field runs past the end of its message".into()))?;
    let taken = &bytes[*at..end];
    *at = end;
    Ok(taken)
}

/// Splits a message into its fields, in the order they appear.
pub fn fields(message: &[u8]) -> Result<Vec<Field<'_>>> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let start = at;
        let tag = read_varint(message, &mut at)?;
        let number = u32::try_from(tag >> 3)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Malformed(format!("field number {} out of range", tag >> 3)))?;
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(message, &mut at)?),
            1 => {
                let raw = take(message, &mut at, 8)?;
                Value::Fixed64(u64::from_le_bytes(raw.try_into().unwrap_or([0; 8])))
            }
            2 => {
                let length = usize::try_from(read_varint(message, &mut at)?)
                    .map_err(|_| Error::Malformed("length out of range".into()))?;
                Value::Bytes(take(message, &mut at, length)?)
            }
            5 => {
                let raw = take(message, &mut at, 4)?;
                Value::Fixed32(u32::from_le_bytes(raw.try_into().unwrap_or([0; 4])))
            }
            wire_type => {
                return Err(Error::Malformed(format!(
                    "field {number} has wire type {wire_type} (groups are not ONNX)"
                )));
            }
        };
        found.push(Field { number, value, raw: &message[start..at] });
    }
    Ok(found)
}

/// A message being encoded.
#[derive(Clone, Debug, Default)]
pub struct Message {
    bytes: Vec<u8>,
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Message {
    pub fn new() -> Self {
        Message::default()
    }

    fn tag(&mut self, number: u32, wire_type: u8) {
        put_varint(&mut self.bytes, (u64::from(number) << 3) | u64::from(wire_type));
    }

    /// An integer field (int32, int64, enum): negative values as ten-byte two's complement.
    pub fn int(mut self, number: u32, value: i64) -> Self {
        self.tag(number, 0);
        put_varint(&mut self.bytes, value as u64);
        self
    }

    pub fn float(mut self, number: u32, value: f32) -> Self {
        self.tag(number, 5);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(mut self, number: u32, value: &[u8]) -> Self {
        self.tag(number, 2);
        put_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn string(self, number: u32, value: &str) -> Self {
        self.bytes(number, value.as_bytes())
    }

    pub fn message(self, number: u32, value: &Message) -> Self {
        self.bytes(number, &value.bytes)
    }

    /// Fields copied as they were read (tag included).
    pub fn raw(mut self, field: &Field<'_>) -> Self {
        self.bytes.extend_from_slice(field.raw);
        self
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_written_read_back_with_their_raw_bytes() {
        let inner = Message::new().string(1, "Relu");
        let message = Message::new()
            .int(1, 300)
            .int(2, -1)
            .float(3, 1.5)
            .message(4, &inner)
            .string(5, "")
            .into_bytes();
        let read = fields(&message).expect("fields");
        let numbers: Vec<u32> = read.iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
        assert_eq!(read[0].varint().expect("varint"), 300);
        assert_eq!(read[1].varint().expect("varint") as i64, -1);
        assert_eq!(read[2].value, Value::Fixed32(1.5f32.to_bits()));
        let nested = fields(read[3].bytes().expect("bytes")).expect("nested");
        assert_eq!(nested[0].string().expect("string"), "Relu");
        assert_eq!(read[4].string().expect("string"), "");
        // Copying every raw field gives the message back byte for byte.
        let copied = read.iter().fold(Message::new(), |m, f| m.raw(f)).into_bytes();
        assert_eq!(copied, message);
        // 300 = 0b10_0101100: two varint bytes after the one-byte tag.
        assert_eq!(read[0].raw, [0x08, 0xac, 0x02]);
    }

    #[test]
    fn truncated_and_unknown_encodings_are_refused() {
        let message = Message::new().string(1, "features").into_bytes();
        assert!(fields(&message[..message.len() - 1]).is_err());
        assert!(fields(&[0x08, 0x80]).is_err(), "varint without its last byte");
        assert!(fields(&[0x0b]).is_err(), "wire type 3 (start group)");
        assert!(fields(&[0x00, 0x01]).is_err(), "field number 0");
    }
}
