"""A study's readings: those the caller may see, and a new one."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from xrayweb.api.permissions import CanReviewOrRead
from xrayweb.api.serializers import ReviewCreateSerializer, ReviewSerializer
from xrayweb.review.selectors import reviews_visible, study_with_details
from xrayweb.review.services import review_submit
from xrayweb.studies.selectors import studies_visible


class StudyReviewsApi(APIView):
    """GET: the readings of this study the caller may see (a pending second read hides the
    first from other readers). POST (radiologists): add a reading."""

    permission_classes = [IsAuthenticated, CanReviewOrRead]

    @extend_schema(responses=ReviewSerializer(many=True))
    def get(self, request, pk: int):
        study = get_object_or_404(
            studies_visible(user=request.user, qs=study_with_details()), pk=pk
        )
        reviews = reviews_visible(study=study, user=request.user)
        return Response(ReviewSerializer(reviews, many=True).data)

    @extend_schema(request=ReviewCreateSerializer, responses={201: ReviewSerializer})
    def post(self, request, pk: int):
        study = get_object_or_404(study_with_details(), pk=pk)
        form = ReviewCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        review = review_submit(study=study, reviewer=request.user, **form.validated_data)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)
