//! Keras' colour augmentations, applied to a transformed image's values (0–255, any layout):
//! `apply_channel_shift` and `apply_brightness_shift` of `ImageDataGenerator`.

/// Pixel values of an 8-bit image.
const FULL_SCALE: f32 = 255.0;

/// Shifts every value by `channel_shift` (clipped to the image's own minimum and maximum, as
/// Keras' `apply_channel_shift`), then, with a `brightness` factor, does what Keras'
/// `apply_brightness_shift` does with its default `scale=True`: `array_to_img` stretches the
/// values to 0–255 and cuts them to 8 bits, PIL's `ImageEnhance.Brightness` multiplies by the
/// factor and cuts again (clipped to 0–255), and the result is read back as is.
pub(super) fn adjust(values: &mut [f32], channel_shift: f64, brightness: Option<f64>) {
    if channel_shift != 0.0 {
        let (low, high) = range(values);
        for value in values.iter_mut() {
            *value = (*value + channel_shift as f32).clamp(low, high);
        }
    }
    if let Some(factor) = brightness {
        let (low, high) = range(values);
        let span = high - low;
        for value in values.iter_mut() {
            let mut stretched = *value - low;
            if span != 0.0 {
                stretched /= span;
            }
            // `astype('uint8')` and PIL's blend with black both truncate.
            let byte = (stretched * FULL_SCALE).clamp(0.0, FULL_SCALE).trunc();
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
    use super::super::{Augmentation, Transform};
    use super::*;

    #[test]
    fn colour_options_leave_the_other_draws_and_the_default_description_as_they_were() {
        let keras = Augmentation::default();
        let colour = Augmentation {
            channel_shift_range: 20.0,
            brightness_range: Some([0.8, 1.2]),
            ..keras.clone()
        };
        for variant in 1..=200 {
            let (plain, coloured) = (
                keras.draw(5, "a/b.jpg", variant, 224, 224),
                colour.draw(5, "a/b.jpg", variant, 224, 224),
            );
            assert_eq!(Transform { channel_shift: 0.0, brightness: None, ..coloured }, plain);
            assert!(coloured.channel_shift.abs() <= 20.0);
            assert!(coloured.brightness.is_some_and(|b| (0.8..=1.2).contains(&b)));
        }
        // Caches and plans made before the options existed describe the same augmentation.
        let description = keras.to_json();
        assert!(!description.contains("channel_shift") && !description.contains("brightness"));
        let plan_form = serde_json::to_string(&keras).expect("serializable");
        assert!(!plan_form.contains("channel_shift") && !plan_form.contains("brightness"));
        let colour_form = serde_json::to_string(&colour).expect("serializable");
        assert_eq!(serde_json::from_str::<Augmentation>(&colour_form).ok(), Some(colour.clone()));
        assert_eq!(Augmentation::from_json(&colour.to_json()), Some(colour));
    }

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
    fn brightness_stretches_to_full_scale_then_scales_and_truncates_like_keras() {
        // numpy: x = [20, 70, 120] - 20 = [0, 50, 100]; / 100 * 255 = [0, 127.5, 255];
        // astype(uint8) = [0, 127, 255]; PIL Brightness 0.5: [0, 63, 127].
        let mut values = vec![20.0, 70.0, 120.0];
        adjust(&mut values, 0.0, Some(0.5));
        assert_eq!(values, vec![0.0, 63.0, 127.0]);
        // A factor above 1 is clipped at 255: [0, 127, 255] * 1.5 = [0, 190.5, 382.5].
        let mut values = vec![20.0, 70.0, 120.0];
        adjust(&mut values, 0.0, Some(1.5));
        assert_eq!(values, vec![0.0, 190.0, 255.0]);
        // A flat image stays black, as Keras' division is skipped for a zero maximum.
        let mut values = vec![9.0; 4];
        adjust(&mut values, 0.0, Some(1.2));
        assert_eq!(values, vec![0.0; 4]);
    }

    #[test]
    fn an_image_already_spanning_0_to_255_keeps_its_bytes_at_factor_1() {
        let mut values: Vec<f32> = (0..=255).map(|v| v as f32).collect();
        let before = values.clone();
        adjust(&mut values, 0.0, Some(1.0));
        assert_eq!(values, before);
    }
}
