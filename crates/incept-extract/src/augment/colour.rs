//! Keras' colour augmentations, applied to a transformed image's values (0–255, any layout):
//! `apply_channel_shift` and `apply_brightness_shift` as `ImageDataGenerator.apply_transform`
//! calls them in tf.keras 2 (`scale=False`).

/// Pixel values of an 8-bit image.
const FULL_SCALE: f32 = 255.0;

/// Shifts every value by `channel_shift` (clipped to the image's own minimum and maximum, as
/// Keras' `apply_channel_shift`), then, with a `brightness` factor, does what Keras'
/// `apply_brightness_shift(x, brightness, scale=False)` does to values already within 0–255:
/// `array_to_img` cuts them to 8 bits, PIL's `ImageEnhance.Brightness` multiplies by the factor
/// and cuts again (clipped at 255), and the result is read back as is.
pub(super) fn adjust(values: &mut [f32], channel_shift: f64, brightness: Option<f64>) {
    if channel_shift != 0.0 {
        let (low, high) = range(values);
        for value in values.iter_mut() {
            *value = (*value + channel_shift as f32).clamp(low, high);
        }
    }
    if let Some(factor) = brightness {
        for value in values.iter_mut() {
            // `astype('uint8')` and PIL's blend with black both truncate.
            let byte = value.clamp(0.0, FULL_SCALE).trunc();
            *value = (byte * factor as f32).clamp(0.0, FULL_SCALE).trunc();
        }
    }
}

/// The smallest and largest of `values` ((0, 0) for none).
fn range(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), &v| (low.min(v), high.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_shift_is_clipped_to_the_image_own_range() {
        let mut values = vec![10.0, 50.0, 200.0];
        adjust(&mut values, 30.0, None);
        assert_eq!(values, vec![40.0, 80.0, 200.0]);
        let mut values = vec![10.0, 50.0, 200.0];
        adjust(&mut values, -30.0, None);
        assert_eq!(values, vec![10.0, 20.0, 170.0]);
    }

    #[test]
    fn brightness_cuts_to_8_bits_then_scales_and_truncates_like_keras() {
        // astype(uint8): [20, 70, 120.9] -> [20, 70, 120]; PIL Brightness 0.5 -> [10, 35, 60].
        let mut values = vec![20.0, 70.0, 120.9];
        adjust(&mut values, 0.0, Some(0.5));
        assert_eq!(values, vec![10.0, 35.0, 60.0]);
        // Above 1 the product is clipped at 255: [20, 70, 200] * 1.5 = [30, 105, 300].
        let mut values = vec![20.0, 70.7, 200.0];
        adjust(&mut values, 0.0, Some(1.5));
        assert_eq!(values, vec![30.0, 105.0, 255.0]);
    }

    #[test]
    fn a_shift_survives_the_brightness_step() {
        // +30 then factor 1: the shifted values, cut to 8 bits (not stretched back).
        let mut values = vec![10.0, 50.5, 200.0];
        adjust(&mut values, 30.0, Some(1.0));
        assert_eq!(values, vec![40.0, 80.0, 200.0]);
    }
}
