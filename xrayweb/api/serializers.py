from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from xrayweb.inference.conformal import (
    CERTAINTIES,
    DISPLAY_LEVEL,
    set_certainty,
    sets_trusted,
)
from xrayweb.inference.models import ModelVersion, Prediction
from xrayweb.inference.selectors import study_assessment
from xrayweb.review.models import Review
from xrayweb.review.selectors import reviews_visible
from xrayweb.studies.models import Assessability, Overrule, ReviewState, Study


class StudyCreateSerializer(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=True)
    # Optional for DICOM files, whose header gives them; required for PNG and JPEG.
    patient_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    accession = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    site = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    view = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class ReviewCreateSerializer(serializers.Serializer):
    label = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="One of the model's classes; empty for a not-diagnostic reading.",
    )
    assessability = serializers.ChoiceField(
        choices=Overrule.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="The reader's answer about the image: empty (as the gate says), "
        "`assessable` (after all: required to label a study the gate refused) or "
        "`not_diagnostic` (no label; counts neither as agreement nor disagreement).",
    )
    comment = serializers.CharField(allow_blank=True, required=False, default="", max_length=4000)
    # The reading state the client saw; a 409 if the study has moved on since.
    expected_state = serializers.ChoiceField(
        choices=ReviewState.choices, required=False, allow_blank=True, default=""
    )


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username")
    replaces = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Review
        fields = [
            "id",
            "label",
            "assessability",
            "kind",
            "comment",
            "reviewer",
            "created_at",
            "agrees_with_model",
            "replaces",
        ]


def _media_url(request, path: str) -> str:
    url = reverse("media", args=[path])
    return request.build_absolute_uri(url) if request else url


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name")
    heatmaps = serializers.SerializerMethodField()
    lung_mask = serializers.SerializerMethodField(
        help_text="The predicted lung fields as a PNG the size of the heatmaps (white inside); "
        "null when the prediction was made without a lung segmenter."
    )
    cam_lung_fraction = serializers.FloatField(
        read_only=True,
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="Share of the fused Grad-CAM's mass inside the predicted lungs, in [0, 1]; "
        "null without a lung segmenter.",
    )
    prediction_sets = serializers.SerializerMethodField(
        help_text='Conformal prediction sets by coverage level ("0.90", "0.95"): the classes '
        "the model cannot rule out, most probable first. Empty for a model without conformal "
        "calibration and for a film that is not assessable."
    )
    prediction_set = serializers.SerializerMethodField(
        help_text="The 0.90 set (9 in 10 such sets contain the true label on new patients of "
        "the hospitals the model trained on, fewer elsewhere); null when there is none."
    )
    set_certainty = serializers.SerializerMethodField(
        help_text="The 0.90 set in a word: `confident` (one class), `two classes`, "
        "`cannot tell` (three or more); null when there is no set."
    )

    class Meta:
        model = Prediction
        fields = [
            "label",
            "probabilities",
            "member_probabilities",
            "model_version",
            "bundle_sha256",
            "heatmaps",
            "lung_mask",
            "cam_lung_fraction",
            "assessable",
            "prediction_sets",
            "prediction_set",
            "set_certainty",
            "cam_layers",
            "duration_ms",
            "batch_size",
            "latency_ms",
            "created_at",
        ]

    def get_heatmaps(self, obj: Prediction) -> dict[str, str]:
        request = self.context.get("request")
        return {k: _media_url(request, v) for k, v in obj.heatmaps.items()}

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_lung_mask(self, obj: Prediction) -> str | None:
        return _media_url(self.context.get("request"), obj.lung_mask) if obj.lung_mask else None

    @extend_schema_field(
        serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    )
    def get_prediction_sets(self, obj: Prediction) -> dict[str, list[str]]:
        return sets_trusted(prediction_sets=obj.prediction_sets, assessable=obj.assessable)

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_prediction_set(self, obj: Prediction) -> list[str] | None:
        return self.get_prediction_sets(obj).get(DISPLAY_LEVEL)

    @extend_schema_field(serializers.ChoiceField(choices=CERTAINTIES, allow_null=True))
    def get_set_certainty(self, obj: Prediction) -> str | None:
        return set_certainty(self.get_prediction_set(obj))


class AssessmentSerializer(serializers.Serializer):
    """Whether the model may be believed on this study (documented in xrayweb/README.md)."""

    assessable = serializers.BooleanField(
        allow_null=True,
        help_text="The current prediction's verdict: the DICOM header's scope and the gate; "
        "null for a prediction made before the gate.",
    )
    reasons = serializers.ListField(
        child=serializers.CharField(),
        help_text="Why not, in words: the DICOM header's scope first, then the gate's.",
    )
    scores = serializers.DictField(
        child=serializers.FloatField(allow_null=True), help_text="The gate's scores."
    )
    checked_by = serializers.CharField(
        allow_null=True, help_text="The model version whose gate checked it."
    )
    flags = serializers.ListField(
        child=serializers.CharField(),
        help_text="Warnings that do not refuse, e.g. 'read with care: low confidence'.",
    )
    overruled = serializers.ChoiceField(
        choices=[c for c in Overrule.values if c],
        allow_null=True,
        help_text="The latest final reading's answer: `assessable` (after all), "
        "`not_diagnostic`, or null when no reading overruled the gate.",
    )
    state = serializers.ChoiceField(
        choices=Assessability.values,
        help_text="The effective state after any overrule; the model's output is a diagnosis "
        "only when `assessable` (or `unchecked`, for predictions made before the gate).",
    )


class StudySerializer(serializers.ModelSerializer):
    prediction = serializers.SerializerMethodField()
    assessment = serializers.SerializerMethodField()
    reviews = serializers.SerializerMethodField()
    current_label = serializers.SerializerMethodField()
    uploaded_by = serializers.CharField(source="uploaded_by.username")

    class Meta:
        model = Study
        fields = [
            "id",
            "status",
            "failure_reason",
            "patient_id",
            "accession",
            "site",
            "view",
            "created_at",
            "uploaded_by",
            "image_width",
            "image_height",
            "prediction",
            "assessment",
            "current_label",
            "review_state",
            "final_label",
            "reviews",
        ]

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, obj: Study) -> dict | None:
        prediction = obj.current_prediction
        return PredictionSerializer(prediction, context=self.context).data if prediction else None

    @extend_schema_field(AssessmentSerializer(allow_null=True))
    def get_assessment(self, obj: Study) -> dict | None:
        assessment = study_assessment(study=obj)
        return AssessmentSerializer(assessment).data if assessment else None

    def get_reviews(self, obj: Study) -> list[dict]:
        # While a study awaits its second read, the first read is hidden from other readers.
        request = self.context.get("request")
        reviews = reviews_visible(study=obj, user=request.user) if request else []
        return ReviewSerializer(reviews, many=True).data

    def get_current_label(self, obj: Study) -> str | None:
        return obj.final_label or None


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "sha256",
            "classes",
            "members",
            "metrics",
            "locked_metrics",
            "gate",
            "is_active",
            "created_at",
            "activated_at",
        ]


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)
    expiry = serializers.DateTimeField(read_only=True, allow_null=True)
